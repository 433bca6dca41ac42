"""Worker processes start safely: forked only while nothing can leave a lock held in the child
(no torch run, no other thread), else from a fresh interpreter — and give the loop's results
either way, also right after torch has run in this process (a notebook that trains, then
prepares), which used to hang a forked worker."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

from defectlab import _parallel


def test_fork_only_while_it_is_safe():
    code = textwrap.dedent("""
        import threading, time
        from defectlab._parallel import start_method
        first = start_method()
        t = threading.Thread(target=time.sleep, args=(1,)); t.start()
        with_thread = start_method()
        t.join()
        import torch  # noqa: F401
        print(first, with_thread, start_method())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    first, with_thread, after_torch = out.stdout.split()
    assert first == "fork" and with_thread != "fork" and after_torch != "fork"


def test_a_pool_after_torch_ran_finishes_with_the_loops_results():
    code = textwrap.dedent("""
        import torch
        torch.set_num_threads(2)
        x = torch.randn(512, 512)
        for _ in range(20):
            x = torch.tanh(x @ x / 512)          # torch's thread pool has run here
        from defectlab._parallel import ordered_map
        with ordered_map(divmod, range(1, 40), n_items=39, workers=2, shared=(1000,)) as results:
            pooled = list(results)
        print(pooled == [divmod(1000, i) for i in range(1, 40)])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "True"


def test_this_process_reports_its_own_state():
    # in the test process torch is usually imported by other tests; whatever the state, the
    # rule holds
    expected_fork = threading.active_count() == 1 and "torch" not in sys.modules
    assert (_parallel.start_method() == "fork") == expected_fork
