import sys
print("driver stub", sys.argv[1:])
