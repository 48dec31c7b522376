"""What the CLIs print: progress lines with a total and a unit (or an honest spinner with a count), tables whose
columns say what they hold, piped tables never cut (tab-separated), `export formats --project` marking what fits."""
from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import CONFIG_VARS, run_cli

from datalabel import active, embedded, labelconfig, ls
from datalabel.output import count_text

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\r")


def run_in_terminal(*args: str, env: dict, columns: int = 120, timeout: float = 300) -> tuple[int, str]:
    """`python -m datalabel args` with stdout and stderr on a pseudo-terminal (as in a shell): exit code and the
    text it showed, control sequences removed."""
    main, child = pty.openpty()
    full = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    full.update({"TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": "50", **env})
    full.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "datalabel", *args], stdin=subprocess.DEVNULL, stdout=child,
                            stderr=child, env=full, close_fds=True)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    code = proc.wait(timeout=timeout)
    return code, ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


def test_count_text_says_the_total_and_the_unit():
    assert count_text(120, 5000, "tasks") == "120/5,000 tasks"
    assert count_text(3_100_000, 20_000_000, "bytes") == "3.1/20.0 MB"
    assert count_text(907_733, None, "bytes") == "0.9 MB"  # a download of unknown size: no "/?"
    assert count_text(1797, None, "tasks") == "1,797 tasks"
    assert count_text(5, None, None) == ""  # a spinner only


def test_upload_progress_in_a_terminal_shows_the_total_and_the_unit(digits_dir, bucket, label_studio, tmp_path):
    folder = tmp_path / "pngs"
    folder.mkdir()
    for png in sorted((digits_dir / "images").glob("*.png"))[:12]:
        (folder / png.name).write_bytes(png.read_bytes())
    code, shown = run_in_terminal("bucket", "upload", str(folder), "--prefix", "progress/",
                                  env=label_studio.env(bucket.name))
    assert code == 0, shown
    assert "12/12 files" in shown, shown
    assert "/?" not in shown


def test_project_read_in_a_terminal_is_a_spinner_counting_megabytes(ls_client, bucket, label_studio):
    """The whole-project read is Label Studio's export, of unknown size: a count in MB, never "n/?"."""
    project = ls_client.projects.create(title=f"spinner {bucket.name}",
                                        label_config=labelconfig.build_config("image-classification", ["a", "b"]))
    ls_client.projects.import_tasks(id=project.id, request=[{"image": f"gs://{bucket.name}/i{i}.png"}
                                                            for i in range(30)])
    code, shown = run_in_terminal("stats", str(project.id), env=label_studio.env(bucket.name))
    assert code == 0, shown
    assert re.search(rf"read project {project.id}\s.*\d+\.\d MB", shown), shown
    assert "/?" not in shown


@pytest.fixture
def classification(ls_client, bucket):
    config = labelconfig.build_config("image-classification", ["a", "b", "c"])
    long_title = (f"{bucket.name}-" + "a-long-project-title-" * 3)[:50]  # Label Studio's longest title
    project = ls_client.projects.create(title=long_title, label_config=config)
    return project.id, long_title


def test_piped_tables_are_tab_separated_and_never_cut(label_studio, bucket, classification):
    pid, long_title = classification
    piped = run_cli("projects", "list", env={**label_studio.env(bucket.name), "COLUMNS": "80"})
    assert piped.ok, piped
    lines = piped.stdout.splitlines()
    assert lines[0] == "# Projects" and lines[1].split("\t")[:2] == ["id", "title"]
    row = next(line.split("\t") for line in lines[2:] if line.startswith(f"{pid}\t"))
    assert row[1] == long_title  # whole, at 80 columns
    assert "…" not in piped.stdout
    created = row[lines[1].split("\t").index("created")]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d", created), created  # the whole timestamp


def test_a_table_in_a_narrow_terminal_wraps_instead_of_cutting(label_studio, bucket, classification):
    pid, long_title = classification
    code, shown = run_in_terminal("projects", "list", env=label_studio.env(bucket.name), columns=70)
    assert code == 0, shown
    assert "│" in shown or "┃" in shown  # a table for a person, not TSV
    assert "…" not in shown
    titles, current = [], None  # the title column, each row's wrapped lines joined again
    for line in shown.splitlines():
        cells = line.split("│")
        if len(cells) < 4:
            continue
        if cells[1].strip():  # an id: a new row
            current = [cells[2].strip()]
            titles.append(current)
        elif current is not None:
            current.append(cells[2].strip())
    assert long_title in ["".join(parts) for parts in titles], titles


def test_export_formats_marks_what_fits_the_project(label_studio, bucket, classification, tmp_path):
    pid, _ = classification
    env = label_studio.env(bucket.name)
    listed = run_cli("export", "formats", "--project", pid, "--json", env=env)
    assert listed.ok, listed
    fits = {f["format"]: f["fits"] for f in listed.json()["convert"]}
    assert fits["imagefolder"] is True and fits["csv"] is True
    assert fits["yolo"] is False and fits["coco"] is False and fits["voc"] is False
    # the marks are the test `convert` refuses by
    for fmt, ok in fits.items():
        if not ok:
            refused = run_cli("export", "convert", "--project", pid, "-f", fmt, "-o", tmp_path / fmt, env=env)
            assert refused.returncode != 0 and "the label config has none" in refused.stderr, refused
    table = run_cli("export", "formats", "--project", pid, env=env)
    assert table.ok, table
    rows = {line.split("\t")[0]: line.split("\t") for line in table.stdout.splitlines() if "\t" in line}
    assert rows["format"][:2] == ["format", "fits"]
    assert rows["imagefolder"][1] == "yes" and rows["yolo"][1].startswith("no: writes boxes")
    assert "fits" in rows["name"]  # Label Studio's own formats, marked too
    plain = run_cli("export", "formats", env=env)
    assert plain.ok and "fits" not in plain.stdout.splitlines()[1]  # no project: nothing to fit


def test_al_select_columns_say_what_they_hold(ls_client, bucket, label_studio):
    """The stored prediction score is the strategy's certainty (here the margin); the top-class probability is
    another number: each under its own name."""
    project = ls_client.projects.create(title=f"columns {bucket.name}",
                                        label_config=labelconfig.build_config("image-classification", ["a", "b", "c"]))
    ls_client.projects.import_tasks(id=project.id, request=[{"image": f"gs://{bucket.name}/i{i}.png"}
                                                            for i in range(4)])
    target = active.project_target(ls_client, project.id)
    tasks = sorted(t["id"] for t in ls.iter_task_json(ls_client, project.id, fields="task_only"))
    probs = {tid: {"a": 0.5 + 0.1 * i, "b": 0.3 - 0.05 * i, "c": 0.2 - 0.05 * i} for i, tid in enumerate(tasks)}
    preds = [active.prediction_json(tid, p, target, "m1", "margin") for tid, p in probs.items()]
    assert active.import_predictions(ls_client, project.id, preds) == 4
    active.use_for_sampling(ls_client, project.id, "m1")
    env = label_studio.env(bucket.name)
    out = run_cli("al", "select", "--project", project.id, "-s", "margin", "-k", "4", "--split", "all", env=env)
    assert out.ok, out
    lines = [line.split("\t") for line in out.stdout.splitlines() if "\t" in line]
    header, rows = lines[0], lines[1:]
    assert header == ["task_id", "label", "top_prob", "prediction_score", "uncertainty", "split"]
    assert len(rows) == 4
    for row in rows:
        cells = dict(zip(header, row))
        p = probs[int(cells["task_id"])]
        top, second = sorted(p.values(), reverse=True)[:2]
        assert float(cells["top_prob"]) == pytest.approx(top, abs=1e-3)
        assert float(cells["prediction_score"]) == pytest.approx(top - second, abs=1e-3)  # the margin, stored
        assert float(cells["uncertainty"]) == pytest.approx(1 - (top - second), abs=1e-3)
    as_json = run_cli("al", "select", "--project", project.id, "-s", "margin", "-k", "1", "--split", "all",
                      "--json", env=env).json()["selected"][0]
    assert set(as_json) >= {"top_prob", "prediction_score", "uncertainty"} and "score" not in as_json


def test_convert_in_a_terminal_counts_tasks_without_a_made_up_total(tmp_path):
    """Tasks streamed from a file: their number is not known ahead, so a spinner counts them ("2,000 tasks")."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from bench_convert import CONFIG, make_export

    make_export(tmp_path / "export.json", 2000)
    (tmp_path / "config.xml").write_text(CONFIG)
    code, shown = run_in_terminal("export", "convert", "--from-file", str(tmp_path / "export.json"), "--config",
                                  str(tmp_path / "config.xml"), "-f", "yolo", "-o", str(tmp_path / "out"),
                                  "--no-images", "--workers", "1", env={})
    assert code == 0, shown
    assert re.search(r"exporting yolo\s.*2,000 tasks", shown), shown
    assert "/?" not in shown
