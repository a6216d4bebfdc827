d = {}
for k in (3, 1, 2):
    d[k] = k * k
print(sorted(d.items()))
print(d.get(9, "missing"))
