"""Finding faces: MTCNN, batched, over an image pyramid that reaches from the smallest face asked for to a face
filling the photo, its large levels run in tiles so a big photo costs little memory.

detector.py holds FaceDetector (detect, refine, landmarks); mtcnn.py facenet-pytorch's three networks written
out under their layer names (its weights load unchanged) and the two torchvision operators, without importing
either package (a quick start for `fer predict`).
"""
