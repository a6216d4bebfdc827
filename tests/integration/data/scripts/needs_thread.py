# prints SKIP on a board without threads (as MicroPython's own tests do)
try:
    import _thread
except ImportError:
    print("SKIP")
    raise SystemExit
print("threads")
