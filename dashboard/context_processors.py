from registry import selectors


def registry_nav(request):
    """The contexts of the top-bar selector: only those the user belongs to."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {"nav_contexts": list(selectors.context_list(request.user))}
