"""Administration: user management (roles, deactivation), every action audited."""
