"""Sign in with GitHub, run by the API: the authorization-code flow with state and PKCE
(`flow`), the GitHub client (`github`), the API's own access tokens (`tokens`), refresh-token
sessions (`sessions`), the refresh cookie and its CSRF checks (`cookies`), and the settings
(`settings`). docs/frontend.md describes it from a front end's side."""
