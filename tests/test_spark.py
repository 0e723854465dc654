"""The promoted model scores a photo archive on Spark: `mlflow.pyfunc.spark_udf` over Spark's `binaryFile` source,
in a local Spark session, with the same answers as `fer predict`.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_spark.py

Needs PySpark (the `test` extra) and a Java runtime (scripts/system-deps.sh); both come with `make test`.
Needs ../shared/data/realphotos-dev (skipped, with the reason, without it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHARED, need_shared

pytestmark = pytest.mark.slow

REAL_PHOTOS = SHARED / "data" / "realphotos-dev" / "images"
N_PHOTOS = 240
PARTITIONS = 4


@pytest.fixture
def spark(tmp_path, monkeypatch):
    if shutil.which("java") is None:
        pytest.fail("no Java runtime on PATH: `make test` installs one (scripts/system-deps.sh)")
    from pyspark.sql import SparkSession

    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)  # the workers run this venv's Python
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    session = (
        SparkSession.builder.master("local[2]")
        .appName("fer-spark-test")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.local.dir", str(tmp_path / "spark"))
        .config("spark.sql.warehouse.dir", str(tmp_path / "warehouse"))
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def test_spark_udf_scores_a_photo_folder_like_fer_predict(tmp_path, mlflow_store, spark):
    import mlflow
    from pyspark.sql import functions as F

    from fer.inference.weights import bundled_card
    from registry import Registry

    photos = sorted(need_shared(REAL_PHOTOS).glob("*.jpg"))[:N_PHOTOS]
    folder = tmp_path / "archive"
    folder.mkdir()
    for p in photos:
        shutil.copy(p, folder / p.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 the first bytes of a JPEG, then nothing")

    Registry(mlflow_store).bootstrap()  # version 1: the bundled model, in production
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # env_manager="local" advice; pandas 3 advice of PySpark
        udf = mlflow.pyfunc.spark_udf(spark, "models:/fer-emotion@production", env_manager="local")
        frame = spark.read.format("binaryFile").option("pathGlobFilter", "*.jpg").load(str(folder))
        frame = frame.repartition(PARTITIONS)
        assert frame.rdd.getNumPartitions() == PARTITIONS
        scored = frame.select("path", udf("content").alias("result")).select("path", "result.faces", "result.error")
        scored.cache()
        # a column Spark can query: an array of structs, probabilities a struct of the model's emotions
        face = scored.schema["faces"].dataType.elementType
        assert scored.schema["faces"].dataType.typeName() == "array" and face.typeName() == "struct"
        assert face["box"].dataType.simpleString() == "array<bigint>" and face["score"].dataType.typeName() == "double"
        assert face["emotion"].dataType.typeName() == "string" and face["whole_image"].dataType.typeName() == "boolean"
        assert sorted(face["probabilities"].dataType.fieldNames()) == sorted(bundled_card()["labels"])
        happy = (
            scored.select(F.explode("faces").alias("face"))
            .where(F.col("face.probabilities.happy") > 0.5)
            .select("face.emotion")
            .distinct()
            .collect()
        )
        rows = {Path(r["path"].removeprefix("file:")).name: r.asDict(recursive=True) for r in scored.collect()}
    assert len(rows) == N_PHOTOS + 1
    assert [r["emotion"] for r in happy] == ["happy"]  # more than half happy: read as happy, by Spark itself

    assert "corrupt image" in (rows["broken.jpg"]["error"] or "")
    assert rows["broken.jpg"]["faces"] == []

    cli = subprocess.run(
        [sys.executable, "-m", "fer", "predict", "--json", *map(str, sorted(folder.glob("*.jpg")))],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    expected = {Path(r["image"]).name: r for r in json.loads(cli.stdout)}
    assert set(expected) == set(rows)
    assert expected["broken.jpg"]["error"] and cli.returncode == 2  # the CLI refuses the same file

    found = 0
    for name, row in rows.items():
        if name == "broken.jpg":
            continue
        assert row["error"] == "", name  # empty, not the text "None"
        faces, want = row["faces"], expected[name]["faces"]
        assert len(faces) == len(want), name
        for got, ref in zip(faces, want):
            assert got["box"] == ref["box"] and got["emotion"] == ref["emotion"], name
            assert got["score"] == pytest.approx(ref["score"], abs=1e-5), name
            assert got["probabilities"] == pytest.approx(ref["probabilities"], abs=1e-4), name
        found += bool(faces)
    assert found > 0.9 * N_PHOTOS  # these are photos of people: most have a face
