# Fails under CPython: there is no micropython module there.
import micropython

print(micropython.const(2))
