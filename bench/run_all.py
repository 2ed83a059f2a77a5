"""Run every benchmark in turn with its default size (``make bench``).

Each script runs in its own process, so one benchmark's loaded models and threads do not
colour the next one's figures. Extra arguments are passed to none of them: run a script
directly to change its size (e.g. ``bench/bench_analyze.py --posts 100000``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["bench_analyze.py", "bench_classify.py", "bench_topics.py", "bench_collect_mastodon.py",
           "bench_collect_blog.py"]


def main() -> int:
    failed = []
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        if subprocess.run([sys.executable, str(HERE / script)], cwd=HERE.parent).returncode:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
