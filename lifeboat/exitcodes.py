"""Exit codes of every `lifeboat` command, from sysexits.h, so Kubernetes and users can tell
"wait" from "fix something" at a glance. Every module takes them from here.

0  EX_OK        done: skipped, fresh or restored (restore); backup taken (backup)
65 EX_DATAERR   `lifeboat backup`: the guard refused (empty, shrunken or foreign volume over history)
66 EX_NOINPUT   `lifeboat backup`: the snapshot is incomplete (files the process could not read)
75 EX_TEMPFAIL  the store could not be reached or answered wrongly; retried until the deadline
77 EX_NOPERM    credentials refused or the restic password does not open the repository
78 EX_CONFIG    invalid or missing configuration; the message names the variable and the fix
"""

EX_OK = 0
EX_DATAERR = 65
EX_NOINPUT = 66
EX_TEMPFAIL = 75
EX_NOPERM = 77
EX_CONFIG = 78
