package assertion

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/decision"
	"github.com/tokengate/tokengate/internal/jwt"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/store/boltstore"
)

// clock is a test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testKeys(t *testing.T, c *clock) *keyring.Holder {
	t.Helper()
	st, err := boltstore.Open(t.TempDir()+"/t.db", boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return keyring.NewDocumentHolder(st, DocumentName(jwt.ES256), keyring.Policy{}, jwt.ES256, MaxLifetime, c.now)
}

func verify(t *testing.T, ks *keyring.Keys, tok string) Claims {
	t.Helper()
	p, err := jwt.Parse(tok)
	if err != nil {
		t.Fatal(err)
	}
	k, ok := ks.Verifier(p.Header.Kid)
	if !ok {
		t.Fatalf("unknown kid %s", p.Header.Kid)
	}
	if err := p.Verify(k); err != nil {
		t.Fatal(err)
	}
	if p.Header.Typ != Type {
		t.Errorf("typ %q", p.Header.Typ)
	}
	var c Claims
	if err := p.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAssertClaimsAndCache(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	keys := testKeys(t, c)
	s := NewSigner(Options{Issuer: "gw", Audience: "up", Lifetime: time.Minute, Keys: keys, Now: c.now})
	ctx := context.Background()
	ip := netip.MustParseAddr("192.0.2.7")
	pat := &decision.Decision{Owner: "alice", User: "alice", Kind: "pat", TokenID: "t1", ScopeHeader: "read write"}
	ext := &decision.Decision{Owner: "issuer:https://idp", User: "svc", Issuer: "https://idp", Kind: "jwt", TokenID: "j2"}

	tok, err := s.Assert(ctx, pat, ip)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keys.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := verify(t, ks, tok)
	want := Claims{Issuer: "gw", Subject: "alice", Namespace: NamespaceUser, TokenKind: "pat", TokenID: "t1", Scope: "read write",
		ClientIP: "192.0.2.7", Audience: "up", IssuedAt: 1_800_000_000, Expires: 1_800_000_060, ID: got.ID}
	if got != want || got.ID == "" {
		t.Errorf("claims\n got %+v\nwant %+v", got, want)
	}

	// Reused while more than half its lifetime is left, for the same
	// decision and address only.
	c.add(29 * time.Second)
	if again, _ := s.Assert(ctx, pat, ip); again != tok {
		t.Error("not reused within half its lifetime")
	}
	if other, _ := s.Assert(ctx, pat, netip.MustParseAddr("192.0.2.8")); other == tok {
		t.Error("reused for another address")
	}
	c.add(2 * time.Second)
	if again, _ := s.Assert(ctx, pat, ip); again == tok {
		t.Error("reused with less than half its lifetime left")
	}

	// Namespaces; an assertion never outlives its token.
	client := &decision.Decision{Owner: "client:tgc_x", User: "tgc_x", Kind: "oauth", TokenID: "j1",
		ExpiresAt: c.now().Add(20 * time.Second).UnixNano()}
	ctok, _ := s.Assert(ctx, client, netip.Addr{})
	cc := verify(t, ks, ctok)
	if cc.Namespace != NamespaceOAuthClient || cc.Subject != "tgc_x" || cc.ClientIP != "" || cc.SubjectIssuer != "" {
		t.Errorf("client claims %+v", cc)
	}
	if cc.Expires != client.ExpiresAt/int64(time.Second) {
		t.Errorf("exp %d outlives the token (%d)", cc.Expires, client.ExpiresAt/int64(time.Second))
	}
	etok, _ := s.Assert(ctx, ext, ip)
	if ec := verify(t, ks, etok); ec.Namespace != NamespaceExternal || ec.SubjectIssuer != "https://idp" || ec.Subject != "svc" {
		t.Errorf("external claims %+v", ec)
	}

	// A key change (immediate) makes a new assertion at once.
	tok, _ = s.Assert(ctx, pat, ip)
	if _, err := keys.Update(ctx, func(d *keyring.Document) error {
		_, err := d.Rotate(keyring.ModeImmediate, keyring.Policy{}, c.now())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	fresh, _ := s.Assert(ctx, pat, ip)
	ks, _ = keys.Get(ctx)
	if fresh == tok {
		t.Error("an assertion signed with a replaced key was reused")
	}
	verify(t, ks, fresh)
}

func TestSignerBounded(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	k, err := jwt.FromPublic("hs", jwt.HS256, []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	s := NewSigner(Options{Issuer: "gw", Audience: "up", Key: k, Now: c.now, MaxEntries: 8})
	for i := range 50 {
		d := &decision.Decision{Owner: "u", User: "u", Kind: "pat", TokenID: string(rune('a' + i))}
		if _, err := s.Assert(context.Background(), d, netip.Addr{}); err != nil {
			t.Fatal(err)
		}
		if s.Len() > 8 {
			t.Fatalf("%d entries, bound 8", s.Len())
		}
	}
}

func BenchmarkAssertCached(b *testing.B) {
	k, err := jwt.Generate("k", jwt.ES256)
	if err != nil {
		b.Fatal(err)
	}
	s := NewSigner(Options{Issuer: "gw", Audience: "up", Key: k})
	d := &decision.Decision{Owner: "alice", User: "alice", Kind: "pat", TokenID: "t1"}
	ip := netip.MustParseAddr("192.0.2.7")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Assert(context.Background(), d, ip); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAssertSign(b *testing.B) {
	for _, alg := range []string{jwt.ES256, jwt.EdDSA, jwt.RS256} {
		b.Run(alg, func(b *testing.B) {
			k, err := jwt.Generate("k", alg)
			if err != nil {
				b.Fatal(err)
			}
			s := NewSigner(Options{Issuer: "gw", Audience: "up", Key: k})
			ip := netip.MustParseAddr("192.0.2.7")
			b.ReportAllocs()
			for b.Loop() {
				d := &decision.Decision{Owner: "alice", User: "alice", Kind: "pat", TokenID: "t1"} // a new decision: no reuse
				if _, err := s.Assert(context.Background(), d, ip); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
