"""report.html opens in a real headless Chromium: it renders, and every embedded image loads; and
Snakemake's own `snakemake --report` bundles every figure."""

import os
import re
import shutil
import subprocess

import pytest
from conftest import snakemake

PROBE = """<script>
window.addEventListener('load', () => {
  const images = [...document.images];
  const loaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.title = 'PROBE images=' + images.length + ' loaded=' + loaded
    + ' rows=' + document.querySelectorAll('tr').length;
});
</script>"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "Debian's chromium package is not installed (.ci/run installs it: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI installs it: its absence there is a broken setup, not a skip
        pytest.skip(reason)
    return found


def _headless(browser: str, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=180)


def test_report_is_self_contained(smoke_results):
    page = (smoke_results / "report.html").read_text()
    sources = re.findall(r'src="([^"]+)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<script" not in page and "http://" not in page and "https://" not in page
    for text in ("Claims", "C7", "Config", "Package versions", "Cost of each rule", "wall time", "peak RSS"):
        assert text in page
    # a verdict over replicates first, then the windows over replicates and each replicate's claims
    assert re.search(r"\d of 7 claims pass in every one of the 1 replicate\.", page)
    assert "Phase-change windows over replicates" in page and "Replicate 0:" in page
    assert "replicates: icl by replicate" in page and "attn2 seed0: prefix matching" in page
    # a table of contents whose every link has its section, and the verdict before the first table
    links = re.findall(r'<a href="#(\w+)">', page)
    assert len(links) >= 7 and all(f'id="{key}"' in page for key in links)
    assert page.index("claims pass in every one") < page.index("(seed 0): ") < page.index("<table")
    # one sentence per run, with its numbers, from its phase file
    sentences = re.findall(r"<li>((?:attn1|attn2|smeared1|mlp2) \(seed 0\): .*?)</li>", page)
    assert len(sentences) == 4
    assert all("no window" in s or re.search(r"steps [\d,]+–[\d,]+", s) for s in sentences)
    # numbers and thresholds as words and ranges, not raw JSON
    assert "{&quot;" not in page and "window_steps" not in page
    assert "means at least 50%" in page


def test_report_renders_in_headless_chromium_with_every_image(smoke_results, tmp_path):
    browser = _chromium()
    page = (smoke_results / "report.html").read_text()
    n_images = page.count("<img ")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = _headless(browser, "--dump-dom", probed.as_uri())
    title = re.search(r"<title>PROBE (.*?)</title>", dom.stdout)
    assert title, f"chromium did not run the page's load event:\n{dom.stderr[-3000:]}"
    counts = dict(kv.split("=") for kv in title.group(1).split())
    assert int(counts["images"]) == n_images > 10
    assert counts["loaded"] == counts["images"]
    assert int(counts["rows"]) > 20  # the claims, heads, versions and benchmark tables rendered

    shot = tmp_path / "shot.png"
    _headless(
        browser, f"--screenshot={shot}", "--window-size=1200,1600", (smoke_results / "report.html").as_uri()
    )
    assert shot.stat().st_size > 20_000  # a blank page compresses to a few kB


def test_snakemake_report_bundles_every_figure_claims_and_manifest(smoke_run, tmp_path):
    out = tmp_path / "snakemake-report.html"
    proc = snakemake(smoke_run, "--configfile", "configs/smoke.yaml", "--report", str(out))
    added = set(re.findall(r"Adding (\S+) \(", proc.stderr))
    figures = {p.name for p in (smoke_run / "results" / "smoke" / "figures").rglob("*.png")}
    assert figures and figures | {"claims.json", "manifest.tsv"} <= added
    assert out.stat().st_size > 100_000 and "claims.json" in out.read_text()


def test_a_run_whose_icl_never_fell_reads_without_a_nan_share():
    from inductionheads.report import model_sentence

    window = dict(
        start_step=17, end_step=33, start_tokens=69_632, end_tokens=135_168, fraction=float("nan"),
        icl_formed=0.0, icl_total=0.0, has_phase_change=False, status="too small",
    )  # fmt: skip
    sentence = model_sentence({"model": "smeared1", "seed": 2, "window": window})
    assert "nan" not in sentence and "ends no lower than it began" in sentence
    window |= dict(fraction=0.57, icl_formed=0.02, icl_total=0.035)
    sentence = model_sentence({"model": "attn2", "seed": 0, "window": window})
    assert "57% of its ICL (0.020 of 0.035 nats)" in sentence
