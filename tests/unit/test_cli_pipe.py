"""`nexus status | head`: a reader that goes away ends the command quietly (no traceback)."""
import subprocess
import sys

SCRIPT = """
from nexus import cli
def cmd_status(args):
    for i in range(100000):
        print("line", i)
    return 0
cli.cmd_status = cmd_status
raise SystemExit(cli.main(["status"]))
"""


def test_a_reader_that_goes_away_ends_the_command_quietly():
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout.read(10) == b"line 0\nlin"
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err
