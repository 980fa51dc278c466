"""Files a sweep reads, checked before anything loads: no torch, no diffusers.

Owns model files (`checkpoints`: there, readable, safetensors only unless opted in, complete, the right kind, and
their hashes), the built-in models' component configs as plain data (`configs`) and init images (`images`: decoded
in full, mode and bit depth converted as A1111 does, a pixel bound before decoding).

May import: the leaves (errors, paths, atomic, naming) only. Everything above may import it: the axes check file
values with it, models load what it has checked.
"""
