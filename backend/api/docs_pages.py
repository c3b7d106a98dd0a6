"""The API's browsable pages (spectree serves them under /api/docs/<name>/), on vendored assets only.

Spectree's own templates load Swagger UI, ReDoc and Scalar from unpkg and jsdelivr; the platform runs where
there may be no internet, so these load the copies in backend/web/static/vendor/ (its README says which
versions, and how to refresh them), served by the web blueprint at /static/. Scalar is not vendored, so it has
no page. Both show /api/openapi.json, the document with the answers every operation can give (401, 429, the
body errors), rather than spectree's own copy without them. Spectree fills each template with str.format
({spec_url}, {spec_path} and its OAuth2 settings): braces meant for the page are doubled.
"""

SWAGGER = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<title>Proxmox PaaS API: Swagger UI</title>
<link rel="stylesheet" href="/static/vendor/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/static/vendor/swagger-ui-bundle.js"></script>
<script>
window.onload = function () {{
    // BaseLayout: no top bar (a box to load any URL's document); validatorUrl null: no badge fetched from
    // validator.swagger.io.
    window.ui = SwaggerUIBundle({{
        url: "/api/openapi.json",
        dom_id: "#swagger-ui",
        presets: [SwaggerUIBundle.presets.apis],
        layout: "BaseLayout",
        deepLinking: true,
        validatorUrl: null,
    }});
}};
</script>
</body>
</html>
"""

REDOC = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<title>Proxmox PaaS API: ReDoc</title>
<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<redoc spec-url="/api/openapi.json"></redoc>
<script src="/static/vendor/redoc.standalone.js"></script>
</body>
</html>
"""

PAGE_TEMPLATES = {"swagger": SWAGGER, "redoc": REDOC}
