package gatewayapi

import (
	_ "embed" // the OpenAPI document
)

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3.1 document of every /v1 route (a copy).
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }
