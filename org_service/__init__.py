"""org_service: a multi-tenant organization backend on MongoDB."""
