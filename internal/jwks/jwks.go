// Package jwks fetches and caches another issuer's JSON Web Key Set. A key
// is looked up by kid; an unknown kid triggers a refresh (so a key rollover
// at the issuer is picked up), but refreshes are never more frequent than
// a floor, so a flood of tokens with made-up kids cannot make the gateway
// hammer the issuer. When the issuer is down or answers garbage, the keys
// already known keep working and the log says why; with no key known at
// all, requests fail closed (503).
package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/tokengate/tokengate/internal/jwt"
)

// Errors of Key.
var (
	// ErrUnknownKey: the issuer publishes no key with that kid.
	ErrUnknownKey = errors.New("unknown key id")
	// ErrUnavailable: no key set could be fetched yet.
	ErrUnavailable = errors.New("the issuer's key set is unavailable")
)

// maxBody bounds a JWKS document.
const maxBody = 1 << 20

// Fetcher keeps one issuer's keys.
type Fetcher struct {
	url     string
	client  *http.Client
	floor   time.Duration // least time between two fetches
	maxAge  time.Duration // refresh known keys after this long
	logger  *zap.Logger
	now     func() time.Time
	group   singleflight.Group
	mu      sync.RWMutex
	keys    map[string]*jwt.Key
	fetched time.Time        // last successful fetch
	tried   time.Time        // last attempt
	refused map[Refused]bool // keys left out of the last set, logged once
}

// Options configure a Fetcher.
type Options struct {
	// Client is the HTTP client (default: 10s timeout). Its redirect
	// policy is replaced by the Fetcher's own (see New).
	Client *http.Client
	// AllowHTTPLoopback lets the URL be plain http:// when its host is a
	// loopback address (127.0.0.0/8, ::1) or "localhost": for tests and
	// sidecars on the same machine. Off by default: https:// only.
	AllowHTTPLoopback bool
	// Floor is the least time between fetches (default 30s).
	Floor time.Duration
	// MaxAge is how long a fetched set is trusted before a refresh
	// (default 1h).
	MaxAge time.Duration
	Logger *zap.Logger
	Now    func() time.Time
}

// maxRedirects bounds the same-origin redirects a fetch follows.
const maxRedirects = 3

// New returns a Fetcher for rawURL; it fetches on first use. The URL must be
// https:// (see CheckURL). A fetch follows at most maxRedirects
// redirects, and only within the URL's origin (scheme, host and port):
// a redirect elsewhere is refused, so the keys that verify tokens always
// come from the origin the operator named.
func New(rawURL string, o Options) (*Fetcher, error) {
	if err := CheckURL(rawURL, o.AllowHTTPLoopback); err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 10 * time.Second}
	if o.Client != nil {
		c := *o.Client // a copy: the caller's client keeps its own policy
		client = &c
	}
	client.CheckRedirect = sameOrigin
	if o.Floor <= 0 {
		o.Floor = 30 * time.Second
	}
	if o.MaxAge <= 0 {
		o.MaxAge = time.Hour
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Fetcher{url: rawURL, client: client, floor: o.Floor, maxAge: o.MaxAge, logger: o.Logger, now: o.Now}, nil
}

// ErrInsecureURL: a JWKS URL that is not https:// (nor an allowed
// loopback http:// URL).
var ErrInsecureURL = errors.New("jwks_url must be an https:// URL")

// CheckURL checks a JWKS URL: https:// with a host, or, if
// allowHTTPLoopback, http:// to a loopback host (127.0.0.0/8, ::1,
// localhost). Keys fetched over plain HTTP from elsewhere could be
// replaced by anyone on the path, and would then verify their tokens.
func CheckURL(raw string, allowHTTPLoopback bool) error {
	// The messages never repeat the URL: it might hold a password.
	u, err := url.Parse(raw)
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case err != nil:
		return fmt.Errorf("%w: %v", ErrInsecureURL, err)
	case u.User != nil:
		return fmt.Errorf("%w without credentials", ErrInsecureURL)
	case u.Hostname() == "":
		return fmt.Errorf("%w with a host", ErrInsecureURL)
	case u.Scheme == "https":
		return nil
	case u.Scheme != "http":
		return fmt.Errorf("%w, not %q", ErrInsecureURL, u.Scheme+"://")
	case !isLoopback(u.Hostname()):
		return fmt.Errorf("%w: plain http:// is allowed only to a loopback host", ErrInsecureURL)
	case !allowHTTPLoopback:
		return fmt.Errorf("%w: plain http:// to a loopback host needs allow_http_loopback", ErrInsecureURL)
	}
	return nil
}

// isLoopback: "localhost" or a loopback IP literal (an IPv4-mapped IPv6
// address counts as its IPv4 address).
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// sameOrigin is the fetch client's redirect policy.
func sameOrigin(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("more than %d redirects", maxRedirects)
	}
	if origin(req.URL) != origin(via[0].URL) {
		return fmt.Errorf("refused a redirect to another origin (%s)", origin(req.URL))
	}
	return nil
}

// origin is a URL's scheme, host and port, with the scheme's default port
// made explicit.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return u.Scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// Key returns the key with kid.
func (f *Fetcher) Key(ctx context.Context, kid string) (*jwt.Key, error) {
	now := f.now()
	f.mu.RLock()
	k, ok := f.keys[kid]
	fresh := now.Sub(f.fetched) < f.maxAge
	mayFetch := now.Sub(f.tried) >= f.floor
	f.mu.RUnlock()
	if ok && (fresh || !mayFetch) {
		return k, nil
	}
	if mayFetch {
		f.refresh(ctx)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if k, ok := f.keys[kid]; ok {
		return k, nil
	}
	if f.keys == nil {
		return nil, ErrUnavailable
	}
	return nil, ErrUnknownKey
}

// refresh fetches the set once for all concurrent callers; on failure the
// known keys stay.
func (f *Fetcher) refresh(ctx context.Context) {
	_, _, _ = f.group.Do("fetch", func() (any, error) {
		f.mu.Lock()
		if f.now().Sub(f.tried) < f.floor { // another caller just fetched
			f.mu.Unlock()
			return nil, nil
		}
		f.tried = f.now()
		f.mu.Unlock()
		keys, err := f.fetch(context.WithoutCancel(ctx))
		if err != nil {
			f.logger.Warn("fetching the JWKS failed; keeping the keys already known",
				zap.String("url", f.url), zap.Error(err))
			return nil, nil
		}
		f.mu.Lock()
		f.keys, f.fetched = keys, f.now()
		f.mu.Unlock()
		return nil, nil
	})
}

func (f *Fetcher) fetch(ctx context.Context) (map[string]*jwt.Key, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	if resp.ContentLength > maxBody {
		return nil, fmt.Errorf("key set larger than %d bytes", maxBody)
	}
	// An over-size body is an error, never a truncated parse.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("key set larger than %d bytes", maxBody)
	}
	return f.parse(body)
}

// Refused is a key of a set that Parse left out, and why.
type Refused struct {
	KID    string // "" if the key has none
	Reason string
	// Bad is set when the key claims to be a signing key we could use
	// but is malformed (wrong size, off the curve, a kid used twice):
	// worth a warning, unlike a key that is simply not for us.
	Bad bool
}

// Parse reads a JWKS into verification keys by kid. Keys without a kid,
// private keys, symmetric keys, keys for encryption, and keys whose alg
// does not fit their type are skipped; so are keys of the wrong size or
// shape (see jwt.FromPublic) and every key of a kid used twice, while the
// rest of the set is kept. A set with no usable key is an error.
func Parse(body []byte) (map[string]*jwt.Key, error) {
	keys, _, err := ParseReport(body)
	return keys, err
}

// ParseReport is Parse, also telling which keys were left out and why.
// Each key is read on its own, so one that cannot be read (an unknown
// kty, a missing member) is refused without losing the others (RFC 7517
// 5: keys that are not understood are ignored).
func ParseReport(body []byte) (map[string]*jwt.Key, []Refused, error) {
	var doc map[string]json.RawMessage
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, nil, fmt.Errorf("malformed key set: %v", err)
	}
	if err := json.Unmarshal(doc["keys"], &raws); err != nil || raws == nil {
		return nil, nil, errors.New(`malformed key set: no "keys" array`)
	}
	keys := make(map[string]*jwt.Key)
	var refused []Refused
	twice := make(map[string]bool)
	for _, raw := range raws {
		jk, err := jwk.ParseKey(raw)
		if err != nil {
			var named struct {
				Kid any `json:"kid"`
			}
			_ = json.Unmarshal(raw, &named) // only to name the key in the log
			kid, _ := named.Kid.(string)
			refused = append(refused, Refused{KID: kid, Reason: fmt.Sprintf("unreadable key: %v", err), Bad: true})
			continue
		}
		kid := jk.KeyID()
		k, why, bad := usable(jk)
		switch {
		case k == nil:
			refused = append(refused, Refused{KID: kid, Reason: why, Bad: bad})
		case twice[kid]:
			// Already refused below.
		case keys[kid] != nil:
			// Which of the two would verify is anyone's guess: neither.
			delete(keys, kid)
			twice[kid] = true
			refused = append(refused, Refused{KID: kid, Reason: "the kid names two keys", Bad: true})
		default:
			keys[kid] = k
		}
	}
	if len(keys) == 0 {
		return nil, refused, errors.New("key set has no usable signing key")
	}
	return keys, refused, nil
}

// usable makes a verification key of jk, or says why not (bad: the key is
// malformed rather than merely not for us).
func usable(jk jwk.Key) (k *jwt.Key, why string, bad bool) {
	switch {
	case jk.KeyID() == "":
		return nil, "no kid", false
	case jk.KeyUsage() != "" && jk.KeyUsage() != "sig":
		return nil, "not a signing key (use " + jk.KeyUsage() + ")", false
	}
	var raw any
	if err := jk.Raw(&raw); err != nil {
		return nil, fmt.Sprintf("unreadable %s key: %v", jk.KeyType(), err), true
	}
	alg := algFor(raw, jk.Algorithm().String())
	if alg == "" {
		return nil, fmt.Sprintf("%s key (alg %q) is not a public key we verify with", jk.KeyType(), jk.Algorithm().String()), false
	}
	k, err := jwt.FromPublic(jk.KeyID(), alg, raw)
	if err != nil {
		return nil, err.Error(), true
	}
	// Another issuer's signer may not normalise ECDSA's s (see
	// jwt.Key.AcceptHighS).
	return k.AcceptHighS(), "", false
}

// logRefused logs the keys of a fetched set that were left out, once for
// as long as the issuer keeps serving them: malformed keys as warnings,
// keys that are not for us at debug level.
func (f *Fetcher) logRefused(refused []Refused) {
	now := make(map[Refused]bool, len(refused))
	for _, r := range refused {
		now[r] = true
	}
	f.mu.Lock()
	last := f.refused
	f.refused = now
	f.mu.Unlock()
	for _, r := range refused {
		if last[r] {
			continue
		}
		level := zap.DebugLevel
		if r.Bad {
			level = zap.WarnLevel
		}
		if ce := f.logger.Check(level, "refusing a key of the issuer's key set; keeping the others"); ce != nil {
			ce.Write(zap.String("url", f.url), zap.String("kid", r.KID), zap.String("reason", r.Reason))
		}
	}
}

// parse is Parse for a fetched set, logging the keys it refused.
func (f *Fetcher) parse(body []byte) (map[string]*jwt.Key, error) {
	keys, refused, err := ParseReport(body)
	f.logRefused(refused)
	return keys, err
}

// algFor is the algorithm a public key is used with: the JWK's alg if it
// fits the key, or the one algorithm we support for its type.
func algFor(raw any, declared string) string {
	var alg string
	switch k := raw.(type) {
	case *rsa.PublicKey:
		alg = jwt.RS256
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			alg = jwt.ES256
		}
	case ed25519.PublicKey:
		alg = jwt.EdDSA
	}
	if declared != "" && declared != alg {
		return "" // a declared alg we do not support for this key: skip it
	}
	return alg
}
