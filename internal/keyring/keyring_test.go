package keyring_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/jwt"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/testutil/pausetest"
)

var (
	t0     = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	policy = keyring.Policy{PublishDelay: 10 * time.Minute}
)

const lifetime = time.Hour

// clock is an injectable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newDoc(t *testing.T, alg string) *keyring.Document {
	t.Helper()
	d, err := keyring.New(alg, lifetime, policy, t0)
	if err != nil {
		t.Fatalf("New(%s): %v", alg, err)
	}
	return d
}

// inState returns the keys of d in state.
func inState(d *keyring.Document, state string) []keyring.StoredKey {
	var out []keyring.StoredKey
	for _, k := range d.Keys {
		if k.State == state {
			out = append(out, k)
		}
	}
	return out
}

// only returns the one key of d in state.
func only(t *testing.T, d *keyring.Document, state string) keyring.StoredKey {
	t.Helper()
	ks := inState(d, state)
	if len(ks) != 1 {
		t.Fatalf("%d %s keys in %+v, want 1", len(ks), state, d.Keys)
	}
	return ks[0]
}

// has reports whether d holds kid.
func has(d *keyring.Document, kid string) bool {
	return slices.ContainsFunc(d.Keys, func(k keyring.StoredKey) bool { return k.KID == kid })
}

func advance(t *testing.T, d *keyring.Document, now time.Time, wantChanged bool) {
	t.Helper()
	changed, err := d.Advance(policy, now)
	if err != nil || changed != wantChanged {
		t.Fatalf("Advance(%v) = %v, %v; want %v", now, changed, err, wantChanged)
	}
}

func delayOf(alg string) time.Duration {
	if alg == jwt.HS256 {
		return 0
	}
	return policy.PublishDelay
}

func TestNew(t *testing.T) {
	for _, alg := range []string{jwt.HS256, jwt.RS256, jwt.ES256, jwt.EdDSA} {
		t.Run(alg, func(t *testing.T) {
			d := newDoc(t, alg)
			if len(d.Keys) != 2 {
				t.Fatalf("%d keys, want 2", len(d.Keys))
			}
			active, next := only(t, d, keyring.StateActive), only(t, d, keyring.StateNext)
			if active.KID == next.KID || active.Alg != alg || next.Alg != alg {
				t.Errorf("active %s/%s, next %s/%s", active.KID, active.Alg, next.KID, next.Alg)
			}
			if !active.UsableAt.Equal(t0) || !next.UsableAt.Equal(t0.Add(delayOf(alg))) {
				t.Errorf("usable at %v and %v", active.UsableAt, next.UsableAt)
			}
			if d.Alg != alg || d.Lifetime() != lifetime || d.Pending != nil {
				t.Errorf("document %+v", d)
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		for _, c := range []struct {
			alg  string
			life time.Duration
		}{{"none", lifetime}, {"HS512", lifetime}, {jwt.HS256, keyring.MinLifetime - time.Second}, {jwt.HS256, keyring.MaxLifetime + time.Second}} {
			if _, err := keyring.New(c.alg, c.life, policy, t0); err == nil {
				t.Errorf("New(%q, %v) succeeded", c.alg, c.life)
			}
		}
	})
}

func TestHS256RotationIsImmediate(t *testing.T) {
	d := newDoc(t, jwt.HS256)
	oldActive, oldNext := only(t, d, keyring.StateActive), only(t, d, keyring.StateNext)
	now := t0.Add(5 * time.Minute)
	at, err := d.Rotate(keyring.ModeGrace, policy, now)
	if err != nil || !at.Equal(now) {
		t.Fatalf("Rotate = %v, %v; want %v", at, err, now)
	}
	if d.Pending != nil {
		t.Errorf("pending %+v after an HS256 rotation", d.Pending)
	}
	if got := only(t, d, keyring.StateActive).KID; got != oldNext.KID {
		t.Errorf("active %s, want the old next %s", got, oldNext.KID)
	}
	if next := only(t, d, keyring.StateNext); next.KID == oldNext.KID || next.KID == oldActive.KID {
		t.Errorf("no fresh next key: %s", next.KID)
	}
}

func TestRS256RotationIsScheduled(t *testing.T) {
	d := newDoc(t, jwt.RS256)
	oldActive, oldNext := only(t, d, keyring.StateActive), only(t, d, keyring.StateNext)
	due := oldNext.UsableAt
	if !due.Equal(t0.Add(policy.PublishDelay)) {
		t.Fatalf("next usable at %v", due)
	}
	at, err := d.Rotate(keyring.ModeGrace, policy, t0.Add(time.Minute))
	if err != nil || !at.Equal(due) {
		t.Fatalf("Rotate = %v, %v; want %v", at, err, due)
	}
	if d.Pending == nil || d.Pending.Mode != keyring.ModeGrace || !d.Pending.At.Equal(due) {
		t.Fatalf("pending %+v", d.Pending)
	}
	if only(t, d, keyring.StateActive).KID != oldActive.KID {
		t.Fatal("the active key changed before the publish delay")
	}
	advance(t, d, due.Add(-time.Nanosecond), false)
	if only(t, d, keyring.StateActive).KID != oldActive.KID {
		t.Fatal("the active key changed before the publish delay")
	}
	advance(t, d, due, true)
	if d.Pending != nil || only(t, d, keyring.StateActive).KID != oldNext.KID {
		t.Errorf("after Advance: pending %+v, keys %+v", d.Pending, d.Keys)
	}
	if next := only(t, d, keyring.StateNext); !next.UsableAt.Equal(due.Add(policy.PublishDelay)) || next.Alg != jwt.RS256 {
		t.Errorf("fresh next key %+v", next)
	}
}

func TestRotationModes(t *testing.T) {
	cases := []struct {
		alg, mode string
	}{
		{jwt.HS256, keyring.ModeGrace},
		{jwt.HS256, keyring.ModeImmediate},
		{jwt.EdDSA, keyring.ModeGrace},
		{jwt.EdDSA, keyring.ModeImmediate},
	}
	for _, c := range cases {
		t.Run(c.alg+"/"+c.mode, func(t *testing.T) {
			d := newDoc(t, c.alg)
			old := only(t, d, keyring.StateActive)
			promoted := t0.Add(max(delayOf(c.alg), time.Minute))
			if _, err := d.Rotate(c.mode, policy, t0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			advance(t, d, promoted, d.Pending != nil)
			if c.mode == keyring.ModeImmediate {
				if has(d, old.KID) || len(d.Keys) != 2 {
					t.Errorf("immediate mode kept the old key: %+v", d.Keys)
				}
				return
			}
			retiring := only(t, d, keyring.StateRetiring)
			retireAt := promoted.Add(lifetime + keyring.Leeway)
			if retiring.KID != old.KID || !retiring.RetireAt.Equal(retireAt) {
				t.Fatalf("retiring %+v, want %s retiring at %v", retiring, old.KID, retireAt)
			}
			advance(t, d, retireAt.Add(-time.Nanosecond), false)
			if !has(d, old.KID) {
				t.Fatal("retiring key removed early")
			}
			advance(t, d, retireAt, true)
			if has(d, old.KID) || len(d.Keys) != 2 {
				t.Errorf("retiring key not removed: %+v", d.Keys)
			}
		})
	}
	t.Run("bad mode", func(t *testing.T) {
		d := newDoc(t, jwt.HS256)
		if _, err := d.Rotate("fast", policy, t0); err == nil || d.Pending != nil {
			t.Errorf("Rotate(fast) = %v, pending %+v", err, d.Pending)
		}
	})
}

func TestSetAlgorithmHS256ToRS256(t *testing.T) {
	d := newDoc(t, jwt.HS256)
	oldActive := only(t, d, keyring.StateActive)
	now := t0.Add(time.Minute)
	due := now.Add(policy.PublishDelay)
	at, err := d.SetAlgorithm(jwt.RS256, keyring.ModeGrace, policy, now)
	if err != nil || !at.Equal(due) {
		t.Fatalf("SetAlgorithm = %v, %v; want %v", at, err, due)
	}
	next := only(t, d, keyring.StateNext)
	if d.Alg != jwt.RS256 || next.Alg != jwt.RS256 || !next.UsableAt.Equal(due) {
		t.Fatalf("alg %s, next %+v", d.Alg, next)
	}
	advance(t, d, due.Add(-time.Nanosecond), false)
	if only(t, d, keyring.StateActive).KID != oldActive.KID {
		t.Fatal("switched before the publish delay")
	}
	advance(t, d, due, true)
	if a := only(t, d, keyring.StateActive); a.KID != next.KID || a.Alg != jwt.RS256 {
		t.Errorf("active %+v, want the RS256 key %s", a, next.KID)
	}
	if r := only(t, d, keyring.StateRetiring); r.KID != oldActive.KID || r.Alg != jwt.HS256 {
		t.Errorf("retiring %+v", r)
	}
	if n := only(t, d, keyring.StateNext); n.Alg != jwt.RS256 {
		t.Errorf("new next key is %s", n.Alg)
	}
	t.Run("unsupported", func(t *testing.T) {
		d := newDoc(t, jwt.HS256)
		before, _ := d.Encode()
		if _, err := d.SetAlgorithm("HS512", keyring.ModeGrace, policy, now); err == nil {
			t.Error("HS512 accepted")
		}
		if after, _ := d.Encode(); string(after) != string(before) {
			t.Error("a refused SetAlgorithm changed the document")
		}
	})
}

// rotated returns a document of alg with a next, an active and a retiring
// key.
func rotated(t *testing.T, alg string) *keyring.Document {
	t.Helper()
	d := newDoc(t, alg)
	if _, err := d.Rotate(keyring.ModeGrace, policy, t0); err != nil {
		t.Fatal(err)
	}
	advance(t, d, t0.Add(delayOf(alg)), alg != jwt.HS256)
	return d
}

func parse(t *testing.T, d *keyring.Document) *keyring.Keys {
	t.Helper()
	ks, err := keyring.Parse(d)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return ks
}

func TestVerifier(t *testing.T) {
	d := rotated(t, jwt.HS256)
	ks := parse(t, d)
	cases := []struct {
		name, kid string
		want      bool
	}{
		{"active", only(t, d, keyring.StateActive).KID, true},
		{"retiring", only(t, d, keyring.StateRetiring).KID, true},
		{"next", only(t, d, keyring.StateNext).KID, false},
		{"unknown", "0000000000000000", false},
		{"empty", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k, ok := ks.Verifier(c.kid)
			if ok != c.want || (ok && k.ID != c.kid) {
				t.Errorf("Verifier(%q) = %v, %v; want %v", c.kid, k, ok, c.want)
			}
		})
	}
	if ks.Signer().ID != only(t, d, keyring.StateActive).KID {
		t.Error("the signer is not the active key")
	}
}

// jwksKeys returns the JWKS as served (through JSON).
func jwksKeys(t *testing.T, ks *keyring.Keys) []map[string]any {
	t.Helper()
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	b, err := json.Marshal(ks.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.Keys == nil {
		t.Fatalf("JWKS %s: %v", b, err)
	}
	return doc.Keys
}

func TestJWKS(t *testing.T) {
	switching := func(t *testing.T) *keyring.Document {
		d := newDoc(t, jwt.HS256)
		if _, err := d.SetAlgorithm(jwt.ES256, keyring.ModeGrace, policy, t0); err != nil {
			t.Fatal(err)
		}
		return d
	}
	cases := []struct {
		name string
		doc  func(*testing.T) *keyring.Document
		want []string // states of the published keys
	}{
		{"ES256 next, active and retiring", func(t *testing.T) *keyring.Document { return rotated(t, jwt.ES256) },
			[]string{keyring.StateNext, keyring.StateActive, keyring.StateRetiring}},
		{"RS256 next and active", func(t *testing.T) *keyring.Document { return newDoc(t, jwt.RS256) },
			[]string{keyring.StateNext, keyring.StateActive}},
		{"HS256 only", func(t *testing.T) *keyring.Document { return rotated(t, jwt.HS256) }, nil},
		{"HS256 switching to ES256", switching, []string{keyring.StateNext}},
		{"ES256 after HS256", func(t *testing.T) *keyring.Document {
			d := switching(t)
			advance(t, d, t0.Add(policy.PublishDelay), true)
			return d
		}, []string{keyring.StateNext, keyring.StateActive}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.doc(t)
			var want []string
			for _, state := range c.want {
				want = append(want, only(t, d, state).KID)
			}
			var got []string
			for _, k := range jwksKeys(t, parse(t, d)) {
				if _, ok := k["k"]; ok {
					t.Errorf("JWKS publishes a secret: %v", k)
				}
				if k["alg"] == jwt.HS256 || k["kty"] == "oct" {
					t.Errorf("JWKS lists an HS256 key: %v", k)
				}
				got = append(got, k["kid"].(string))
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("JWKS kids %v, want %v", got, want)
			}
		})
	}
}

// ---- Holder ----

func openStore(t *testing.T) *boltstore.Store {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func get(t *testing.T, h *keyring.Holder) *keyring.Keys {
	t.Helper()
	ks, err := h.Get(context.Background())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return ks
}

// kids lists the keys of ks as "state:kid", sorted.
func kids(ks *keyring.Keys) []string {
	var out []string
	for _, k := range ks.Doc.Keys {
		out = append(out, k.State+":"+k.KID)
	}
	slices.Sort(out)
	return out
}

func storedDoc(t *testing.T, st store.Store) []byte {
	t.Helper()
	b, err := st.GetDocument(context.Background(), store.DocKeyring)
	if err != nil {
		t.Fatalf("GetDocument: %v", err)
	}
	return b
}

func TestHolderCreatesKeyring(t *testing.T) {
	st := openStore(t)
	if _, err := st.GetDocument(context.Background(), store.DocKeyring); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("keyring before the first Get: %v", err)
	}
	ks := get(t, keyring.NewHolder(st, policy, "", 0, (&clock{t: t0}).Now))
	d, err := keyring.Decode(storedDoc(t, st))
	if err != nil {
		t.Fatal(err)
	}
	if d.Alg != keyring.DefaultAlg || d.Lifetime() != keyring.DefaultLifetime {
		t.Errorf("stored keyring %s, %v", d.Alg, d.Lifetime())
	}
	if only(t, d, keyring.StateActive).KID != ks.Signer().ID {
		t.Error("the stored active key is not the holder's signer")
	}
}

func TestHolderSharesStore(t *testing.T) {
	st := openStore(t)
	clk := &clock{t: t0}
	h1 := keyring.NewHolder(st, policy, "", 0, clk.Now)
	h2 := keyring.NewHolder(st, policy, "", 0, clk.Now)
	k1, k2 := kids(get(t, h1)), kids(get(t, h2))
	if !slices.Equal(k1, k2) {
		t.Errorf("two holders on one store: %v and %v", k1, k2)
	}
}

func TestHolderInvalidateReloads(t *testing.T) {
	st := openStore(t)
	clk := &clock{t: t0}
	h1 := keyring.NewHolder(st, policy, "", 0, clk.Now)
	h2 := keyring.NewHolder(st, policy, "", 0, clk.Now)
	get(t, h1) // creates the keyring; a holder keeps only what it read
	before := get(t, h1).Signer().ID
	v, err := h2.Apply(context.Background(), keyring.Change{Reset: true, Mode: keyring.ModeGrace, Confirm: true})
	if err != nil {
		t.Fatal(err)
	}
	after := v.ValidationKey["kid"]
	if after == before {
		t.Fatal("reset did not change the signing key")
	}
	if got := get(t, h1).Signer().ID; got != before {
		t.Fatalf("h1 reloaded without an invalidation: %s", got)
	}
	h1.Invalidate()
	if got := get(t, h1).Signer().ID; got != after {
		t.Errorf("after Invalidate h1 signs with %s, want %s", got, after)
	}
}

func TestHolderCarriesOutScheduledSwitch(t *testing.T) {
	st := openStore(t)
	clk := &clock{t: t0}
	h := keyring.NewHolder(st, policy, "", 0, clk.Now)
	alg := jwt.ES256
	if _, err := h.Apply(context.Background(), keyring.Change{Algorithm: &alg, Mode: keyring.ModeGrace, Confirm: true}); err != nil {
		t.Fatal(err)
	}
	if s := get(t, h).Signer(); s.Alg != jwt.HS256 {
		t.Fatalf("signing with %s before the publish delay", s.Alg)
	}
	clk.Advance(policy.PublishDelay)
	if s := get(t, h).Signer(); s.Alg != jwt.ES256 {
		t.Errorf("signing with %s after the publish delay", s.Alg)
	}
	d, err := keyring.Decode(storedDoc(t, st))
	if err != nil || d.Pending != nil || only(t, d, keyring.StateActive).Alg != jwt.ES256 {
		t.Errorf("stored keyring not advanced: %+v, %v", d, err)
	}
}

func TestApplyRefused(t *testing.T) {
	ptr := func(s string) *string { return &s }
	secs := func(n int64) *int64 { return &n }
	cases := []struct {
		name   string
		change keyring.Change
		field  string
	}{
		{"reset without confirm", keyring.Change{Reset: true}, "confirm"},
		{"algorithm without confirm", keyring.Change{Algorithm: ptr(jwt.RS256)}, "confirm"},
		{"bad mode", keyring.Change{Reset: true, Confirm: true, Mode: "fast"}, "mode"},
		{"reset without mode", keyring.Change{Reset: true, Confirm: true}, "mode"},
		{"algorithm without mode", keyring.Change{Algorithm: ptr(jwt.RS256), Confirm: true}, "mode"},
		{"unsupported algorithm", keyring.Change{Algorithm: ptr("HS512"), Mode: keyring.ModeImmediate, Confirm: true}, "algorithm"},
		{"algorithm none", keyring.Change{Algorithm: ptr("none"), Mode: keyring.ModeGrace, Confirm: true}, "algorithm"},
		{"lifetime too short", keyring.Change{LifetimeSeconds: secs(59)}, "lifetime_seconds"},
		{"lifetime zero", keyring.Change{LifetimeSeconds: secs(0)}, "lifetime_seconds"},
		{"lifetime negative", keyring.Change{LifetimeSeconds: secs(-60)}, "lifetime_seconds"},
		{"lifetime too long", keyring.Change{LifetimeSeconds: secs(int64(keyring.MaxLifetime/time.Second) + 1)}, "lifetime_seconds"},
		// 2^55+3600 seconds is 3600 seconds once multiplied by 1e9 in int64.
		{"lifetime overflowing into range", keyring.Change{LifetimeSeconds: secs(1<<55 + 3600)}, "lifetime_seconds"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := openStore(t)
			h := keyring.NewHolder(st, policy, "", 0, (&clock{t: t0}).Now)
			before := kids(get(t, h))
			stored := storedDoc(t, st)
			_, err := h.Apply(context.Background(), c.change)
			p := apierr.For(err)
			if p.Status != 400 || p.Field != c.field {
				t.Errorf("Apply: %v (status %d, field %q); want 400 naming %q", err, p.Status, p.Field, c.field)
			}
			if string(storedDoc(t, st)) != string(stored) {
				t.Error("a refused change was stored")
			}
			if after := kids(get(t, h)); !slices.Equal(after, before) {
				t.Errorf("keys changed: %v -> %v", before, after)
			}
		})
	}
}

func TestSettings(t *testing.T) {
	for _, alg := range []string{jwt.HS256, jwt.RS256, jwt.ES256, jwt.EdDSA} {
		t.Run(alg, func(t *testing.T) {
			st := openStore(t)
			h := keyring.NewHolder(st, policy, alg, 0, (&clock{t: t0}).Now)
			v, err := h.Settings(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			signer := get(t, h).Signer()
			vk := v.ValidationKey
			if v.Algorithm != alg || vk["kid"] != signer.ID || len(v.Keys) != 2 {
				t.Errorf("settings %+v", v)
			}
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			d, _ := keyring.Decode(storedDoc(t, st))
			for _, k := range d.Keys {
				// []byte material would be standard base64 in JSON.
				if strings.Contains(string(b), base64.StdEncoding.EncodeToString(k.Material)) || strings.Contains(string(b), "material") {
					t.Errorf("settings show the material of key %s", k.KID)
				}
			}
			if alg == jwt.HS256 {
				if vk["kty"] != "oct" || vk["k"] != base64.RawURLEncoding.EncodeToString(signer.Secret()) {
					t.Errorf("HS256 validation key %v does not show the secret", vk)
				}
				return
			}
			for _, f := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
				if _, ok := vk[f]; ok {
					t.Errorf("validation key has private field %q", f)
				}
			}
		})
	}
}

// jwksKIDs lists the kids the JWKS of d publishes.
func jwksKIDs(t *testing.T, d *keyring.Document) []string {
	t.Helper()
	var out []string
	for _, k := range jwksKeys(t, parse(t, d)) {
		out = append(out, k["kid"].(string))
	}
	return out
}

// assertGone fails if kid still signs, verifies or is published in d.
func assertGone(t *testing.T, d *keyring.Document, kid string) {
	t.Helper()
	ks := parse(t, d)
	if _, ok := ks.Verifier(kid); ok {
		t.Errorf("old key %s still verifies", kid)
	}
	if ks.Signer().ID == kid {
		t.Errorf("old key %s still signs", kid)
	}
	if slices.Contains(jwksKIDs(t, d), kid) {
		t.Errorf("old key %s still in the JWKS", kid)
	}
}

// TestImmediateResetRS256 (issue 11 item 6): an immediate reset of an
// RS256 keyring replaces the signing key at once, even though its next key
// has not been published for the JWKS cache lifetime yet; the old keys
// neither sign, nor verify, nor appear in the JWKS, and nothing is left
// pending.
func TestImmediateResetRS256(t *testing.T) {
	d := rotated(t, jwt.RS256) // next, active and a retiring key from a grace rotation
	old := []string{only(t, d, keyring.StateActive).KID, only(t, d, keyring.StateRetiring).KID, only(t, d, keyring.StateNext).KID}
	now := t0.Add(policy.PublishDelay + time.Minute) // the next key is not usable before now+PublishDelay-1m
	at, err := d.Rotate(keyring.ModeImmediate, policy, now)
	if err != nil || !at.Equal(now) {
		t.Fatalf("Rotate(immediate) = %v, %v; want %v", at, err, now)
	}
	if d.Pending != nil || len(d.Keys) != 2 {
		t.Fatalf("after an immediate reset: pending %+v, keys %+v", d.Pending, d.Keys)
	}
	for _, kid := range old {
		assertGone(t, d, kid)
	}
	active := only(t, d, keyring.StateActive)
	if !active.ActiveSince.Equal(now) || active.Alg != jwt.RS256 || parse(t, d).Signer().ID != active.KID {
		t.Errorf("new active key %+v", active)
	}
	if !slices.Contains(jwksKIDs(t, d), active.KID) {
		t.Errorf("the new signing key is not in the JWKS %v", jwksKIDs(t, d))
	}
}

// TestSetAlgorithmImmediate: HS256 -> RS256 in immediate mode signs RS256
// at once, and the view says so.
func TestSetAlgorithmImmediate(t *testing.T) {
	st := openStore(t)
	clk := &clock{t: t0}
	h := keyring.NewHolder(st, policy, jwt.HS256, 0, clk.Now)
	oldKID := get(t, h).Signer().ID
	clk.Advance(time.Minute)
	alg := jwt.RS256
	v, err := h.Apply(context.Background(), keyring.Change{Algorithm: &alg, Mode: keyring.ModeImmediate, Confirm: true})
	if err != nil {
		t.Fatal(err)
	}
	ks := get(t, h)
	if s := ks.Signer(); s.Alg != jwt.RS256 || s.ID == oldKID {
		t.Fatalf("signer %s/%s right after an immediate switch to RS256", s.ID, s.Alg)
	}
	if _, ok := ks.Verifier(oldKID); ok {
		t.Error("the HS256 key still verifies after an immediate switch")
	}
	if v.Algorithm != jwt.RS256 || v.Signing.Alg != jwt.RS256 || v.Signing.KID != ks.Signer().ID || !v.Signing.Since.Equal(clk.Now()) {
		t.Errorf("view %+v", v)
	}
	if len(v.Verifying) != 0 || v.Pending != nil || v.Next == nil || !v.Next.SignsFrom.IsZero() {
		t.Errorf("view after an immediate switch: verifying %+v, pending %+v, next %+v", v.Verifying, v.Pending, v.Next)
	}
}

// TestGraceView: during a grace switch HS256 -> RS256 the view says the
// HS256 key signs now and the RS256 key from when it has been published
// for the JWKS cache lifetime; after it the HS256 key verifies until its
// last token expires, then it is dropped.
func TestGraceView(t *testing.T) {
	st := openStore(t)
	clk := &clock{t: t0}
	h := keyring.NewHolder(st, policy, jwt.HS256, 0, clk.Now)
	hs := get(t, h).Signer()
	clk.Advance(time.Minute)
	switchAt := clk.Now().Add(policy.PublishDelay)
	alg := jwt.RS256
	v, err := h.Apply(context.Background(), keyring.Change{Algorithm: &alg, Mode: keyring.ModeGrace, Confirm: true})
	if err != nil {
		t.Fatal(err)
	}
	if v.Algorithm != jwt.HS256 || v.Signing.KID != hs.ID || v.Signing.Alg != jwt.HS256 || !v.Signing.Since.Equal(t0) {
		t.Errorf("signing now: algorithm %s, %+v; want the HS256 key %s since %v", v.Algorithm, v.Signing, hs.ID, t0)
	}
	if n := v.Next; n == nil || n.Alg != jwt.RS256 || !n.SignsFrom.Equal(switchAt) || n.Mode != keyring.ModeGrace || !n.PublishedSince.Equal(clk.Now()) {
		t.Errorf("next %+v; want RS256 from %v", v.Next, switchAt)
	}
	if s := get(t, h).Signer(); s.ID != hs.ID {
		t.Fatalf("signing with %s/%s before the publish delay", s.ID, s.Alg)
	}

	clk.Advance(policy.PublishDelay)
	v, err = h.Settings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	verifiesUntil := switchAt.Add(lifetime + keyring.Leeway)
	if v.Algorithm != jwt.RS256 || v.Signing.Alg != jwt.RS256 || !v.Signing.Since.Equal(switchAt) {
		t.Errorf("after the switch: algorithm %s, signing %+v", v.Algorithm, v.Signing)
	}
	want := []keyring.RetiringView{{KID: hs.ID, Alg: jwt.HS256, SignedUntil: switchAt, VerifiesUntil: verifiesUntil}}
	if !slices.Equal(v.Verifying, want) || v.Next.Mode != "" || !v.Next.SignsFrom.IsZero() {
		t.Errorf("after the switch: verifying %+v, next %+v; want %+v", v.Verifying, v.Next, want)
	}
	if _, ok := get(t, h).Verifier(hs.ID); !ok {
		t.Error("the HS256 key stopped verifying before its last token expired")
	}
	clk.Advance(verifiesUntil.Sub(clk.Now()))
	if _, ok := get(t, h).Verifier(hs.ID); ok {
		t.Error("the HS256 key still verifies after its last token expired")
	}
}

// TestRetiringKeyOutlivesItsLongestToken: a lifetime shortened before a
// grace rotation does not cut short the tokens the old key signed with
// the longer lifetime.
func TestRetiringKeyOutlivesItsLongestToken(t *testing.T) {
	d := newDoc(t, jwt.HS256)
	if err := d.SetLifetime(2 * time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := d.SetLifetime(keyring.MinLifetime); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Minute)
	if _, err := d.Rotate(keyring.ModeGrace, policy, now); err != nil {
		t.Fatal(err)
	}
	r := only(t, d, keyring.StateRetiring)
	if want := now.Add(2*time.Hour + keyring.Leeway); !r.RetireAt.Equal(want) || !r.SignedUntil.Equal(now) {
		t.Errorf("retiring %+v; want retire at %v", r, want)
	}
	if a := only(t, d, keyring.StateActive); a.SignedLifetimeSeconds != int64(keyring.MinLifetime/time.Second) {
		t.Errorf("new active key signed lifetime %d", a.SignedLifetimeSeconds)
	}
}

// blockingStore is a real store whose GetDocument, once armed, waits
// until released, so that a test can invalidate while a load is under way.
type blockingStore struct {
	store.Store
	*pausetest.Gate
}

func (s *blockingStore) GetDocument(ctx context.Context, name string) ([]byte, error) {
	b, err := s.Store.GetDocument(ctx, name)
	s.Hold()
	return b, err
}

// TestHolderInvalidateDuringLoad: a load that read the keyring before an
// invalidation neither installs what it read nor hands it to a Get that
// began after the invalidation (which would verify with a key an
// immediate reset removed).
func TestHolderInvalidateDuringLoad(t *testing.T) {
	st := openStore(t)
	clk := &clock{t: t0}
	writer := keyring.NewHolder(st, policy, "", 0, clk.Now)
	old := get(t, writer).Signer().ID
	bs := &blockingStore{Store: st, Gate: pausetest.New()}
	h := keyring.NewHolder(bs, policy, "", 0, clk.Now)
	signer := func() (string, error) {
		ks, err := h.Get(context.Background())
		if err != nil {
			return "", err
		}
		return ks.Signer().ID, nil
	}
	bs.Arm()
	done := pausetest.Go(t, signer)
	bs.Read() // the load has read the old keyring
	if _, err := writer.Apply(context.Background(), keyring.Change{Reset: true, Mode: keyring.ModeImmediate, Confirm: true}); err != nil {
		t.Fatal(err)
	}
	h.Invalidate()
	fresh := pausetest.Within(t, bs.Gate, pausetest.Go(t, signer),
		"a Get after the invalidation waited for the load begun before it")
	bs.Release()
	if first := <-done; first != old {
		t.Fatalf("the first load read %s, want the old key %s", first, old)
	}
	if fresh == old {
		t.Error("a Get after the invalidation got the keys it replaced")
	}
	if got := get(t, h).Signer().ID; got == old {
		t.Error("the load begun before the invalidation installed the old keys")
	}
}

// TestHolderRefresh: a node that meets a kid it does not know reads the
// store again (another node may have just reset the keys), but not more
// than once a second.
func TestHolderRefresh(t *testing.T) {
	st := openStore(t)
	clk := &clock{t: t0}
	h1 := keyring.NewHolder(st, policy, "", 0, clk.Now)
	h2 := keyring.NewHolder(st, policy, "", 0, clk.Now)
	get(t, h1)
	get(t, h1) // installed
	v, err := h2.Apply(context.Background(), keyring.Change{Reset: true, Mode: keyring.ModeImmediate, Confirm: true})
	if err != nil {
		t.Fatal(err)
	}
	refresh := func() *keyring.Keys {
		ks, err := h1.Refresh(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	if _, ok := refresh().Verifier(v.Signing.KID); ok {
		t.Fatal("Refresh read the store again within a second of the last read")
	}
	clk.Advance(time.Second)
	if _, ok := refresh().Verifier(v.Signing.KID); !ok {
		t.Error("Refresh did not learn the new key")
	}
}
