"""The restore init container (`lifeboat restore`): fill empty volumes before the app starts.

`decision` is the pure restore table; `run` takes the volume's lock, asks the store and applies it.
"""
