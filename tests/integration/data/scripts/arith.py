# expected output produced by the host's python3 (no .exp file)
print(sum(range(10)), 7 * 6, 2 ** 16)
for w in ["a", "bc", "def"]:
    print(w, len(w))
