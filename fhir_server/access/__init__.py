"""Who is calling and what they may reach: principals, role policies, scope restrictions."""
