// Starts Swagger UI on /docs over the app's own OpenAPI document (a file, so the page needs no inline script).
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
