"""Reading and writing one leaf of a nested-dict parameter tree by its path of keys."""


def set_path(tree, path, value):
    """tree[path[0]][path[1]]... = value, creating the intermediate dicts."""
    for name in path[:-1]:
        tree = tree.setdefault(name, {})
    tree[path[-1]] = value


def get_path(tree, path):
    """tree[path[0]][path[1]]..."""
    for name in path:
        tree = tree[name]
    return tree


def has_path(tree, path):
    """Whether tree[path[0]][path[1]]... exists."""
    for name in path:
        if not isinstance(tree, dict) or name not in tree:
            return False
        tree = tree[name]
    return True
