// Package redact keeps credentials out of what the build prints and
// publishes. It has two rules for URLs:
//
//   - MaskURL, for logs, errors and listings a person reads: each secret is
//     replaced by "***" where it stood, so the URL keeps its shape.
//   - StripURL, for documents that are published (the SBOM): whatever may
//     be a secret is removed.
//
// Secrets replaces known secret values in any text (a log line), and
// StripPassword applies rfs's rule for the routes it writes into flists.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask stands for a hidden value.
const Mask = "***"

// secretParam matches query parameter names whose values are credentials:
// tokens, keys, signatures (S3 presigned URLs carry X-Amz-Signature and
// X-Amz-Credential), passwords.
var secretParam = regexp.MustCompile(`(?i)token|secret|pass|key|sig|credential|auth|session`)

// keepsUser lists the schemes whose user name is an S3 access key id, not a
// secret: rfs keeps it in the routes it writes, and a listing must tell two
// of them apart. Elsewhere a user name may be a token
// (https://TOKEN@host, https://TOKEN:x-oauth-basic@github.com).
var keepsUser = map[string]bool{"s3": true, "s3s": true}

// MaskURL returns rawURL fit for a log line, an error or a listing. A
// password becomes "***" (s3://key:***@host), and so does the whole user
// information of other schemes (https://***@host); an s3 user name (an
// access key id) is kept. The values of query parameters that look like
// credentials become "***". Everything else is kept byte for byte, so a
// masked route still matches the route it came from. A URL that does not
// parse loses all its user information and its whole query.
func MaskURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Opaque != "" && strings.Contains(u.Opaque, "@")) {
		return maskUnparsed(rawURL)
	}
	out := rawURL
	if u.User != nil {
		user := Mask
		if keepsUser[strings.ToLower(u.Scheme)] {
			user = url.User(u.User.Username()).String()
			if _, has := u.User.Password(); has {
				user += ":" + Mask
			}
		}
		var ok bool
		if out, ok = replaceUserinfo(rawURL, user); !ok {
			return maskUnparsed(rawURL)
		}
	}
	return maskQuery(out)
}

// replaceUserinfo puts user in place of the user information of rawURL,
// leaving the rest as written.
func replaceUserinfo(rawURL, user string) (string, bool) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return "", false
	}
	authEnd := strings.IndexAny(rest, "/?#")
	if authEnd < 0 {
		authEnd = len(rest)
	}
	at := strings.LastIndex(rest[:authEnd], "@")
	if at < 0 {
		return "", false
	}
	return scheme + "://" + user + rest[at:], true
}

// StripPassword removes the password from a URL's user information and
// keeps the user name, as rfs does for the routes it writes into an flist
// (s3://user:pw@h:9000/b?region=r becomes s3://user@h:9000/b?region=r). A
// URL without a password is returned unchanged, byte for byte; ok is false
// for a URL that does not parse.
func StripPassword(rawURL string) (_ string, ok bool) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Opaque != "" && strings.Contains(u.Opaque, "@")) {
		return "", false
	}
	if _, has := u.User.Password(); !has {
		return rawURL, true
	}
	return replaceUserinfo(rawURL, url.User(u.User.Username()).String())
}

// maskQuery masks the values of the query parameters of s that look like
// credentials, keeping their order and the fragment.
func maskQuery(s string) string {
	base, query, hasQuery := strings.Cut(s, "?")
	if !hasQuery {
		return s
	}
	query, frag, hasFrag := strings.Cut(query, "#")
	parts := strings.Split(query, "&")
	for i, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if name, err := url.QueryUnescape(k); err != nil || secretParam.MatchString(name) {
			parts[i] = k + "=" + Mask
		}
	}
	out := base + "?" + strings.Join(parts, "&")
	if hasFrag {
		out += "#" + frag
	}
	return out
}

// maskUnparsed hides everything before the last '@' of a URL that does not
// parse (an unescaped '/' in a password makes the authority end early, so
// the last '@' anywhere counts), and drops its query.
func maskUnparsed(rawURL string) string {
	rawURL, _, _ = strings.Cut(rawURL, "?")
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		if strings.Contains(rawURL, "@") {
			return Mask
		}
		return rawURL
	}
	end := strings.IndexByte(rest, '#')
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		return scheme + "://" + Mask + rest[at:]
	}
	return rawURL
}

// StripURL removes what may be a secret from a URL, for a published
// document: the user information and every query parameter but region (a
// route's s3://KEY:SECRET@host:port/path?region=r becomes
// s3://host:port/path?region=r), and the fragment. A string without "://"
// (a local path, an scp-like git source whose user name is no secret) is
// returned as it is.
func StripURL(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	rest := s[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		rest = rest[at+1:]
	}
	base, query, hasQuery := strings.Cut(s[:i+3]+rest, "?")
	base, _, _ = strings.Cut(base, "#")
	if !hasQuery {
		return base
	}
	query, _, _ = strings.Cut(query, "#")
	vals, err := url.ParseQuery(query)
	kept := url.Values{}
	if err == nil && vals.Has("region") {
		kept["region"] = vals["region"]
	}
	if len(kept) == 0 {
		return base
	}
	return base + "?" + kept.Encode()
}

// Secrets replaces every occurrence of each secret in s with "***".
func Secrets(s string, secrets []string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, Mask)
		}
	}
	return s
}
