package remote

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/skiff-containers/skiff/errdefs"
)

// Challenge is one authentication challenge of a WWW-Authenticate header.
type Challenge struct {
	// Scheme is lowercased: "bearer" or "basic".
	Scheme string
	// Params holds the challenge's parameters with lowercased keys
	// ("realm", "service", "scope", "error").
	Params map[string]string
}

// ParseChallenges parses a WWW-Authenticate header value (RFC 7235):
// `Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull"`.
// Several challenges may be given, separated by commas; malformed trailing
// parts are ignored.
func ParseChallenges(header string) []Challenge {
	var out []Challenge
	s := header
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return out
		}
		i := strings.IndexAny(s, " \t")
		scheme := s
		if i >= 0 {
			scheme, s = s[:i], s[i:]
		} else {
			s = ""
		}
		c := Challenge{Scheme: strings.ToLower(scheme), Params: map[string]string{}}
		// params: key=value or key="quoted", separated by commas; a token
		// followed by a space and no '=' starts the next challenge.
		for {
			s = strings.TrimLeft(s, " \t,")
			eq := strings.IndexByte(s, '=')
			sp := strings.IndexAny(s, " \t,")
			if s == "" || eq <= 0 || (sp >= 0 && sp < eq) {
				break
			}
			key := strings.ToLower(strings.TrimSpace(s[:eq]))
			s = strings.TrimLeft(s[eq+1:], " \t")
			var val string
			if strings.HasPrefix(s, `"`) {
				var b strings.Builder
				j := 1
				for ; j < len(s) && s[j] != '"'; j++ {
					if s[j] == '\\' && j+1 < len(s) {
						j++
					}
					b.WriteByte(s[j])
				}
				val = b.String()
				if j < len(s) {
					j++
				}
				s = s[j:]
			} else {
				end := strings.IndexAny(s, ", \t")
				if end < 0 {
					end = len(s)
				}
				val, s = s[:end], s[end:]
			}
			c.Params[key] = val
		}
		out = append(out, c)
	}
}

// authState is what the resolver remembers about one registry host: the
// challenge it answered with, so later requests are authorised up front.
type authState struct {
	challenge Challenge
}

type tokenKey struct{ realm, service, scope, user string }

type token struct {
	value   string
	expires time.Time
}

// tokenResponse is the token endpoint's answer (distribution's token spec
// and OAuth2's field names).
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// credentials looks up the user's credentials for a domain. A credential
// helper that skiff cannot use is remembered as a note (returned) and the
// request proceeds anonymously.
func (r *Resolver) credentials(ctx context.Context, domain string) (user, secret string, note error, err error) {
	if r.opts.Credentials == nil {
		return "", "", nil, nil
	}
	user, secret, err = r.opts.Credentials.Credentials(ctx, domain)
	if errdefs.IsNotImplemented(err) {
		return "", "", err, nil
	}
	if err != nil {
		return "", "", nil, fmt.Errorf("credentials for registry %s: %w", domain, err)
	}
	return user, secret, nil, nil
}

// authorization returns the Authorization header value for a request to
// the endpoint, from the challenge the host last answered with ("" if it
// has not challenged us). scope is the distribution scope the request
// needs ("repository:library/busybox:pull").
func (r *Resolver) authorization(ctx context.Context, e endpoint, scope string) (string, error) {
	r.mu.Lock()
	st, ok := r.auth[e.host]
	r.mu.Unlock()
	if !ok {
		return "", nil
	}
	switch st.challenge.Scheme {
	case "basic":
		user, secret, _, err := r.credentials(ctx, e.domain)
		if err != nil {
			return "", err
		}
		if user != "" || secret != "" {
			return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+secret)), nil
		}
	case "bearer":
		if s := st.challenge.Params["scope"]; s != "" && scope == "" {
			scope = s
		}
		tok, err := r.token(ctx, e, st.challenge, scope)
		if err != nil {
			return "", err
		}
		return "Bearer " + tok, nil
	}
	return "", nil
}

// handleChallenge records the challenges of a 401 response. It reports
// whether there is a scheme skiff can answer (so the request is worth
// repeating).
func (r *Resolver) handleChallenge(e endpoint, resp *http.Response) bool {
	for _, c := range ParseChallenges(strings.Join(resp.Header.Values("WWW-Authenticate"), ", ")) {
		if c.Scheme == "bearer" && c.Params["realm"] == "" {
			continue
		}
		if c.Scheme == "bearer" || c.Scheme == "basic" {
			r.mu.Lock()
			r.auth[e.host] = authState{challenge: c}
			r.mu.Unlock()
			return true
		}
	}
	return false
}

// token returns a bearer token for scope, from the cache or the
// challenge's realm: GET realm?service=…&scope=… with basic credentials if
// the user has some, anonymously otherwise.
func (r *Resolver) token(ctx context.Context, e endpoint, c Challenge, scope string) (string, error) {
	user, secret, note, err := r.credentials(ctx, e.domain)
	if err != nil {
		return "", err
	}
	key := tokenKey{realm: c.Params["realm"], service: c.Params["service"], scope: scope, user: user}
	r.mu.Lock()
	t, ok := r.tokens[key]
	r.mu.Unlock()
	if ok && time.Now().Before(t.expires) {
		return t.value, nil
	}
	realm, err := url.Parse(key.realm)
	if err != nil || (realm.Scheme != "https" && realm.Scheme != "http") || realm.Host == "" {
		return "", fmt.Errorf("%w: registry %s: bad token realm %q in its WWW-Authenticate challenge", errdefs.ErrInvalidArgument, e.host, key.realm)
	}
	q := realm.Query()
	if key.service != "" {
		q.Set("service", key.service)
	}
	if scope != "" {
		for _, s := range strings.Fields(scope) {
			q.Add("scope", s)
		}
	}
	realm.RawQuery = q.Encode()
	resp, _, err := r.send(ctx, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
		if err != nil {
			return nil, err
		}
		if user != "" || secret != "" {
			req.SetBasicAuth(user, secret)
		}
		return req, nil
	})
	if err != nil {
		return "", fmt.Errorf("get a token for registry %s from %s: %w", e.host, realm.Host, transportError(endpoint{domain: e.domain, host: realm.Host, scheme: realm.Scheme}, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return "", unauthorizedError(e, fmt.Sprintf("the token service %s refused the credentials (%s)", realm.Host, resp.Status), user, note)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("get a token for registry %s from %s: HTTP %s%s", e.host, realm.Host, resp.Status, registryMessage(resp))
	}
	var tr tokenResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tr); err != nil {
		return "", fmt.Errorf("get a token for registry %s from %s: malformed response: %w", e.host, realm.Host, err)
	}
	value := tr.Token
	if value == "" {
		value = tr.AccessToken
	}
	if value == "" {
		return "", fmt.Errorf("get a token for registry %s from %s: the response has no token", e.host, realm.Host)
	}
	ttl := time.Duration(tr.ExpiresIn) * time.Second
	if ttl <= 0 {
		ttl = 60 * time.Second // the distribution token spec's default
	}
	// Renew ahead of expiry so that a token does not lapse mid-request.
	t = token{value: value, expires: time.Now().Add(ttl - min(ttl/5, 30*time.Second))}
	r.mu.Lock()
	r.tokens[key] = t
	r.mu.Unlock()
	return value, nil
}

// unauthorizedError explains a refused authentication: with which
// credentials, and what to do.
func unauthorizedError(e endpoint, what, user string, note error) error {
	var hint string
	switch {
	case note != nil:
		hint = fmt.Sprintf("skiff could not read your stored credentials (%v)", note)
	case user != "":
		hint = fmt.Sprintf("the credentials of user %q were refused: run 'skiff login %s' again", user, e.domain)
	default:
		hint = fmt.Sprintf("no credentials were sent: if the image is private run 'skiff login %s', otherwise check the image name", e.domain)
	}
	return fmt.Errorf("%w: registry %s: unauthorized: %s; %s", errdefs.ErrFailedPrecondition, e.host, what, hint)
}

// errorsBody is the distribution spec's error body.
type errorsBody struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// registryMessage extracts ": CODE: message; …" from an error response's
// body, or "" if it has none.
func registryMessage(resp *http.Response) string {
	if resp.Body == nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb errorsBody
	if json.Unmarshal(b, &eb) != nil || len(eb.Errors) == 0 {
		return ""
	}
	var parts []string
	for _, e := range eb.Errors {
		parts = append(parts, strings.TrimSpace(e.Code+": "+e.Message))
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

// CheckLogin verifies username and secret against the registry domain
// ("docker.io", "localhost:5000") the way `docker login` does: GET /v2/
// and answer the registry's challenge with them. nil means the registry
// accepted them (or needs no authentication); `skiff login` then stores
// them, for example with DockerConfig.Set and Save. A refusal is an
// ErrFailedPrecondition error naming the registry and the user.
func (r *Resolver) CheckLogin(ctx context.Context, domain, username, secret string) error {
	if domain == "" || username == "" {
		return fmt.Errorf("%w: login: registry and username are required", errdefs.ErrInvalidArgument)
	}
	opts := r.opts
	opts.Credentials = StaticCredentials{normalizeAuthKey(domain): {username, secret}}
	lr := &Resolver{opts: opts, client: r.client, auth: map[string]authState{}, tokens: map[tokenKey]token{}}
	e := lr.endpointFor(domain)
	resp, attempts, e, err := lr.requestScope(ctx, e, "", http.MethodGet, "/v2/", "")
	if err != nil {
		return fmt.Errorf("login to %s as %q: %w", domain, username, err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("login to %s as %q: %w", domain, username, statusError(e, resp, attempts, "/v2/"))
	}
	return nil
}
