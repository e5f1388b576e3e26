package oauthclient_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/testutil/oauthtest"
	"github.com/tokengate/tokengate/internal/token"
)

// env is the OAuth services on one store (oauthtest.Env).
type env struct{ *oauthtest.Env }

func newEnv(t *testing.T) *env { return &env{oauthtest.New(t)} }

// status is the HTTP status apierr maps err to.
func status(err error) int { return apierr.For(err).Status }

func TestCreateClient(t *testing.T) {
	e := newEnv(t)
	off := false
	cases := []struct {
		name    string
		req     oauthclient.NewClient
		enabled bool
	}{
		{"defaults", oauthclient.NewClient{Name: "  ci  ", AllowedIPs: []string{"10.1.2.3/8", "192.0.2.7"}, Scopes: []string{"write", "read", "read"}}, true},
		{"disabled", oauthclient.NewClient{Name: "off", Enabled: &off}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cc := e.NewClient(t, c.req)
			if !strings.HasPrefix(cc.ClientID, token.ClientIDPrefix) || len(cc.ClientID) != len(token.ClientIDPrefix)+16 {
				t.Errorf("client id %q", cc.ClientID)
			}
			if !strings.HasPrefix(cc.ClientSecret, token.ClientSecretPrefix) || !token.IsClientSecret(cc.ClientSecret) {
				t.Errorf("client secret has the wrong shape")
			}
			if cc.Enabled != c.enabled || cc.Name != strings.TrimSpace(c.req.Name) {
				t.Errorf("view %+v", cc.ClientView)
			}
			raw := e.Stored(t, cc.ClientID)
			if raw.SecretHash != store.TokenHash(sha256.Sum256([]byte(cc.ClientSecret))) {
				t.Error("the stored hash is not the SHA-256 of the secret")
			}
			b, _ := json.Marshal(raw)
			if strings.Contains(string(b), cc.ClientSecret) || strings.Contains(string(b), cc.ClientSecret[len(token.ClientSecretPrefix):]) {
				t.Error("the secret is stored in clear")
			}
		})
	}
	t.Run("canonical lists", func(t *testing.T) {
		raw := e.Stored(t, e.NewClient(t, cases[0].req).ClientID)
		if !slices.Equal(raw.AllowedIPs, []string{"10.0.0.0/8", "192.0.2.7/32"}) || !slices.Equal(raw.Scopes, []string{"read", "write"}) {
			t.Errorf("stored %v and %v", raw.AllowedIPs, raw.Scopes)
		}
	})
}

func TestAuthenticate(t *testing.T) {
	e := newEnv(t)
	c := e.NewClient(t, oauthclient.NewClient{})
	other, _ := token.NewClientSecret()
	flipped := c.ClientSecret[:len(c.ClientSecret)-1] + "A"
	if strings.HasSuffix(c.ClientSecret, "A") {
		flipped = c.ClientSecret[:len(c.ClientSecret)-1] + "B"
	}
	ctx := context.Background()
	// The one answer every refusal gives.
	_, refused := e.Clients.Authenticate(ctx, c.ClientID, other)
	if refused == nil {
		t.Fatal("a wrong secret was accepted")
	}
	cases := []struct {
		name, id, secret string
		ok               bool
	}{
		{"right secret", c.ClientID, c.ClientSecret, true},
		{"wrong secret", c.ClientID, other, false},
		{"unknown id", "tgc_0000000000000000", c.ClientSecret, false},
		{"id without prefix", c.ClientID[len(token.ClientIDPrefix):], c.ClientSecret, false},
		{"secret of the wrong shape", c.ClientID, "hunter2", false},
		{"PAT as secret", c.ClientID, "tgp_" + c.ClientSecret[len(token.ClientSecretPrefix):], false},
		{"wrong checksum", c.ClientID, flipped, false},
		{"empty secret", c.ClientID, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.Clients.Authenticate(ctx, tc.id, tc.secret)
			switch {
			case tc.ok && (err != nil || got.ID != c.ClientID):
				t.Errorf("Authenticate = %+v, %v", got, err)
			case !tc.ok && (!errors.Is(err, refused) || got.ID != ""):
				t.Errorf("Authenticate = %+v, %v; want %v", got, err, refused)
			}
		})
	}
}

func TestUpdateAndDeleteClient(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.NewClient(t, oauthclient.NewClient{})
	name, off, ips, scopes := "deploy", false, []string{"2001:db8::1/32"}, []string{"admin"}
	cases := []struct {
		name  string
		ch    oauthclient.ClientChanges
		check func(store.Client) bool
	}{
		{"name", oauthclient.ClientChanges{Name: &name}, func(s store.Client) bool { return s.Name == "deploy" }},
		{"enabled", oauthclient.ClientChanges{Enabled: &off}, func(s store.Client) bool { return !s.Enabled }},
		{"allowed IPs", oauthclient.ClientChanges{AllowedIPs: &ips}, func(s store.Client) bool { return slices.Equal(s.AllowedIPs, []string{"2001:db8::/32"}) }},
		{"scopes", oauthclient.ClientChanges{Scopes: &scopes}, func(s store.Client) bool { return slices.Equal(s.Scopes, []string{"admin"}) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.Stored(t, c.ClientID)
			e.Clk.Advance(time.Second)
			v, err := e.Clients.Update(ctx, c.ClientID, tc.ch)
			if err != nil {
				t.Fatal(err)
			}
			after := e.Stored(t, c.ClientID)
			if !tc.check(after) || !after.UpdatedAt.After(before.UpdatedAt) || after.SecretHash != before.SecretHash {
				t.Errorf("stored %+v", after)
			}
			if got, _ := e.Clients.Get(ctx, c.ClientID); !equalViews(got, v) {
				t.Errorf("Get %+v, Update returned %+v", got, v)
			}
		})
	}
	t.Run("delete", func(t *testing.T) {
		if err := e.Clients.Delete(ctx, c.ClientID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.St.GetClient(ctx, c.ClientID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetClient after Delete: %v", err)
		}
		for what, err := range map[string]error{
			"Delete": e.Clients.Delete(ctx, c.ClientID),
			"Update": func() error {
				_, err := e.Clients.Update(ctx, c.ClientID, oauthclient.ClientChanges{Name: &name})
				return err
			}(),
		} {
			if status(err) != http.StatusNotFound {
				t.Errorf("%s of a deleted client: %v", what, err)
			}
		}
		if _, err := e.Clients.Authenticate(ctx, c.ClientID, c.ClientSecret); err == nil {
			t.Error("a deleted client authenticated")
		}
	})
}

func equalViews(a, b oauthclient.ClientView) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestClientFieldErrors(t *testing.T) {
	long := strings.Repeat("é", oauthclient.MaxNameLen+1)
	cases := []struct {
		name, field string
		req         oauthclient.NewClient
	}{
		{"empty name", "name", oauthclient.NewClient{Name: " "}},
		{"long name", "name", oauthclient.NewClient{Name: long}},
		{"control character", "name", oauthclient.NewClient{Name: "ci\x00"}},
		{"invalid UTF-8", "name", oauthclient.NewClient{Name: "ci\xff"}},
		{"bad CIDR", "allowed_ips", oauthclient.NewClient{Name: "ci", AllowedIPs: []string{"10.0.0.0/33"}}},
		{"not an address", "allowed_ips", oauthclient.NewClient{Name: "ci", AllowedIPs: []string{"localhost"}}},
		{"scope with a space", "scopes", oauthclient.NewClient{Name: "ci", Scopes: []string{"read write"}}},
		{"empty scope", "scopes", oauthclient.NewClient{Name: "ci", Scopes: []string{""}}},
		{"scope with a quote", "scopes", oauthclient.NewClient{Name: "ci", Scopes: []string{`re"ad`}}},
	}
	e := newEnv(t)
	ctx := context.Background()
	existing := e.NewClient(t, oauthclient.NewClient{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			check := func(what string, err error) {
				t.Helper()
				if p := apierr.For(err); p.Status != http.StatusBadRequest || p.Field != c.field {
					t.Errorf("%s: %v (status %d, field %q); want 400 naming %q", what, err, p.Status, p.Field, c.field)
				}
			}
			_, err := e.Clients.Create(ctx, c.req)
			check("Create", err)
			ch := oauthclient.ClientChanges{}
			switch c.field {
			case "name":
				ch.Name = &c.req.Name
			case "allowed_ips":
				ch.AllowedIPs = &c.req.AllowedIPs
			case "scopes":
				ch.Scopes = &c.req.Scopes
			}
			_, err = e.Clients.Update(ctx, existing.ClientID, ch)
			check("Update", err)
			if list, _ := e.Clients.List(ctx); len(list) != 1 {
				t.Errorf("%d clients stored", len(list))
			}
			if got := e.Stored(t, existing.ClientID); got.Name != "ci" || len(got.Scopes) != 2 || len(got.AllowedIPs) != 0 {
				t.Errorf("a refused update was stored: %+v", got)
			}
		})
	}
}
