// Swagger UI over the server's own /openapi.json; the Authorize box takes a bearer token.
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  window.ui = window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
    // The console's token, when there is one, saves typing it a second time.
    onComplete: () => {
      const token = window.sessionStorage.getItem("codeq.token");
      if (token) window.ui.preauthorizeApiKey("bearer", token);
    },
  });
});
