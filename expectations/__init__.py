"""Great Expectations 1.x suites as code, and the gates that run them at stage boundaries."""
