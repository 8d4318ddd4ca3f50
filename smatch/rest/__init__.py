"""REST plumbing every app's API shares: the schema's refusals and paging (`schema`), the body limit
(`limits`), the per-caller request rates (`throttles`). The refusal body is `smatch.errors`'.
Authentication belongs to the domain that owns the caller (a BRP token: `flexibility/api/auth.py`)."""
