"""The built wheel installs whole: `pip install` of it, with no make and no npm, gives a dashboard that
draws its charts."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from tests.dashboard.conftest import ARTIFACTS

ROOT = Path(__file__).parents[2]
VENDOR = ROOT / "src" / "logpipe" / "dashboard" / "static" / "vendor"
SHIPPED = ("logpipe/dashboard/static/vendor/echarts.min.js", "logpipe/dashboard/static/vendor/ECHARTS-LICENSE",
           "logpipe/dashboard/static/vendor/ECHARTS-NOTICE", "logpipe/dashboard/static/app.js",
           "logpipe/dashboard/static/index.html", "logpipe/warehouse/sql/066_dict_service.sql",
           "logpipe/monitor/rules.yaml")


def test_the_vendored_chart_library_is_the_version_package_json_pins_with_its_license():
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]["echarts"]
    assert f'version="{pinned}"' in (VENDOR / "echarts.min.js").read_text()
    assert "Apache License" in (VENDOR / "ECHARTS-LICENSE").read_text()
    assert "Apache ECharts" in (VENDOR / "ECHARTS-NOTICE").read_text()


def test_pip_install_of_the_wheel_serves_a_dashboard_that_draws(tmp_path, page, logpipe_factory):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(dist), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = dist.glob("logpipe-*.whl")
    assert set(SHIPPED) <= set(zipfile.ZipFile(wheel).namelist())

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([venv / "bin" / "pip", "install", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    # Its dependencies are this environment's, on its path through a .pth (downloading them is not for a
    # test); the line adds the directory only, so the editable install of the checkout stays out.
    site = Path(subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = subprocess.run([venv / "bin" / "python", "-c", "import logpipe; print(logpipe.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(site)), where  # the installed package, not the checkout

    lp = logpipe_factory(command=[str(venv / "bin" / "logpipe")], timeout_s=180, LOGPIPE_SIM_RATE="1000",
                         LOGPIPE_SYSLOG_ENABLED="false", LOGPIPE_OTLP_ENABLED="false")
    page.goto(lp.base + "/?token=" + lp.tokens["read"])
    page.wait_for_function("typeof echarts !== 'undefined' && Number(document.querySelector('#panel-eps')"
                           "?.dataset.rows) > 0", timeout=120_000, polling=500)
    assert page.locator("#panel-eps .body canvas").count() >= 1
    assert "did not load" not in page.inner_text("body")
    assert page.problems == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-installed-wheel.png"), full_page=True)
    assert lp.stop() == 0
