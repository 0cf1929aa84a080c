// Package auth owns the authentication core of the Gateway API: the scope
// names, the HS256 JWTs the gateway issues and accepts ([Issuer]), and the
// one-time DID challenges a member's wallet signs to obtain a token
// ([Challenges], [Message]).
//
// It is pure: no HTTP, no node state. The HTTP layer maps every refusal of
// [Issuer.Parse] to a 401 and uses [Failure.Reason] as the metric label of
// icn_gateway_auth_failures_total.
//
// Tokens are parsed with github.com/golang-jwt/jwt/v5 v5.3.1, which has the
// fix for CVE-2025-30204 (v5 releases before v5.2.2 allocate excessively
// while splitting a hostile token); the header length is also capped here
// before any parsing ([MaxHeaderBytes]).
package auth
