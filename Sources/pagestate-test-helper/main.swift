import PageState
print("todo")
