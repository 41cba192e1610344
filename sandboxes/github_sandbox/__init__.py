"""A local stand-in for GitHub's OAuth web flow ("Sign in with GitHub") and user API.

from github_sandbox import GitHubSandbox
sb = GitHubSandbox()
url = sb.start()   # GITHUB_BASE_URL and GITHUB_API_URL both point here

Flask/Werkzeug and the standard library only; it imports nothing from `app/`, and `app/` never
imports it (bin/dev-stack and the tests start it).
"""

from .server import GitHubSandbox
from .store import DEV_CALLBACK_URL, DEV_CLIENT_ID, DEV_CLIENT_SECRET

__all__ = ["DEV_CALLBACK_URL", "DEV_CLIENT_ID", "DEV_CLIENT_SECRET", "GitHubSandbox"]
