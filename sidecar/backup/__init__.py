"""One backup of one volume, the same for every caller: guard rails, then locks, then restic.

`guard` is the pure decision (never an empty, shrunken or foreign volume over real history);
`guarded` measures, reads the history, asks the guard and backs up; `oneshot` is `lifeboat backup`,
which runs exactly that path once per volume.
"""
