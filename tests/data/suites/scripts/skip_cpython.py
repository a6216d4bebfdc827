# MicroPython only: skip (print SKIP) where the micropython module is missing.
try:
    import micropython
except ImportError:
    print("SKIP")
    raise SystemExit

print(micropython.const(1))
