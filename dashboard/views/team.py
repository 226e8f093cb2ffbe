"""Context-wide pages: training records, members, audit log, API tokens, version comparison."""

urlpatterns = []
