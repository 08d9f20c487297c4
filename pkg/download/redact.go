package download

import (
	"net/url"
	"regexp"
	"strings"
)

// secretParam matches query parameter names whose values are credentials:
// tokens, keys, signatures (S3 presigned URLs carry X-Amz-Signature and
// X-Amz-Credential), passwords.
var secretParam = regexp.MustCompile(`(?i)token|secret|pass|key|sig|credential|auth|session`)

// userinfo matches the user[:password]@ part of a URL that did not parse.
var userinfo = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#]*@`)

// Redact returns rawURL fit for logs and errors: user information is
// replaced by "redacted" and the values of query parameters that look like
// credentials by "REDACTED". A URL that does not parse loses its user
// information and its whole query.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		s, _, _ := strings.Cut(rawURL, "?")
		return userinfo.ReplaceAllString(s, "${1}redacted@")
	}
	if u.User != nil {
		u.User = url.User("redacted")
	}
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, p := range parts {
			k, _, _ := strings.Cut(p, "=")
			name, err := url.QueryUnescape(k)
			if err != nil || secretParam.MatchString(name) {
				parts[i] = k + "=REDACTED"
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	return u.String()
}
