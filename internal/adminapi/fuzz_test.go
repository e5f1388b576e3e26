package adminapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/acl"
	"github.com/tokengate/tokengate/internal/adminapi"
	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/lastuse"
	"github.com/tokengate/tokengate/internal/legacy"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/testutil/fuzztest"
	"github.com/tokengate/tokengate/internal/users"
)

// adminRoutes are the admin routes that take a JSON body, and what they
// decode it into. $USER, $TOKEN and $CLIENT are a user, one of its
// tokens and an OAuth key that exist.
var adminRoutes = []struct{ method, path string }{
	{http.MethodPost, "/tokengate/users"},                               // users.NewUser
	{http.MethodPatch, "/tokengate/users/$USER"},                        // users.Changes
	{http.MethodPatch, "/tokengate/users/$USER/tokens/$TOKEN"},          // pat.UpdateRequest
	{http.MethodPost, "/tokengate/oauth/clients"},                       // oauthclient.NewClient
	{http.MethodPatch, "/tokengate/oauth/clients/$CLIENT"},              // oauthclient.ClientChanges
	{http.MethodPost, "/tokengate/oauth/signing"},                       // keyring.Change
	{http.MethodPost, "/tokengate/acl/grant"},                           // acl.Grant
	{http.MethodPost, "/tokengate/acl/revoke"},                          // acl.Grant
	{http.MethodPatch, "/tokengate/users/$USER/tokens/$TOKEN/x"},        // no such route
	{http.MethodDelete, "/tokengate/users/$USER/tokens/$TOKEN"},         // revoke
	{http.MethodPost, "/tokengate/store/check"},                         // no body
	{http.MethodGet, "/tokengate/legacy/tokens"},                        // no body
	{http.MethodPut, "/tokengate/oauth/clients/$CLIENT"},                // 405
	{http.MethodPatch, "/tokengate/users/nobody/tokens/0123456789abcd"}, // 404
}

// FuzzAdminAPI sends every admin route that takes a JSON body any body
// and content type (and, for the user and token routes, any user name),
// to the real services on an embedded store: the answer is never a 5xx,
// an error never echoes a secret the body carried, and no answer holds a
// password, a password hash or a secret issued before.
func FuzzAdminAPI(f *testing.F) {
	st, err := boltstore.Open(filepath.Join(f.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	ctx := context.Background()
	now := func() time.Time { return time.Now().UTC().Truncate(time.Second) }
	uses := lastuse.New(st)
	a := acl.New(st)
	api := &adminapi.API{
		Users: users.NewService(st, 4, now), Tokens: pat.NewService(st, uses, 50, now), Store: st,
		Clients: oauthclient.NewClients(st, nil, now), Keys: keyring.NewHolder(st, keyring.Policy{}, "", 0, now),
		ACL: a, Legacy: legacy.NewService(st, uses, a, legacy.Cap{}, 0, now, nil),
	}
	const password = "fuzz-password-1"
	if _, err := api.Users.Create(ctx, users.NewUser{Name: "alice", Password: password, TokenLogin: true}); err != nil {
		f.Fatal(err)
	}
	tok, err := api.Tokens.Create(ctx, "alice", pat.CreateRequest{Label: "ci"})
	if err != nil {
		f.Fatal(err)
	}
	client, err := api.Clients.Create(ctx, oauthclient.NewClient{Name: "ci", Scopes: []string{"read"}})
	if err != nil {
		f.Fatal(err)
	}
	issued := []string{password, tok.Token, client.ClientSecret, "$2a$", "$2b$", "password_hash"}

	for _, s := range []struct {
		route       uint8
		user, ctype string
		body        string
	}{
		{0, "", "application/json", `{"name":"Bob","password":"long enough","roles":["admin"],"token_login":true}`},
		{0, "", "application/json", `{"name":"$PAT","password":"x","roles":["$LEGACY"]}`},
		{0, "", "application/json", `{"name":"bob2","password":"long enough","roles":["$CS!"]}`},
		{1, "alice", "application/json", `{"password":"another one","roles":[],"token_login":false,"disabled":false}`},
		{1, "ALICE", "application/json", `{"roles":["a b"]}`},
		{1, "", "application/json", `{"disabled":true}`},
		{2, "alice", "application/json", `{"label":"renamed","enabled":false,"allowed_ips":["$JWT"]}`},
		{3, "", "application/json", `{"name":"ci2","allowed_ips":["10.0.0.0/8"],"scopes":["read","write"],"enabled":false}`},
		{3, "", "application/json", `{"name":"$PAT","scopes":["$PAT\\"]}`},
		{4, "", "application/json", `{"name":"ci3","enabled":true,"allowed_ips":[],"scopes":["$LEGACY "]}`},
		{5, "", "application/json", `{"lifetime_seconds":600}`},
		{5, "", "application/json", `{"algorithm":"$JWT","mode":"grace","confirm":true}`},
		{5, "", "application/json", `{"algorithm":"EdDSA","mode":"immediate","confirm":true}`},
		{5, "", "application/json", `{"reset":true,"mode":"grace","confirm":true,"lifetime_seconds":-9223372036854775808}`},
		{6, "", "application/json", `{"user":"alice","permission":"use","resource":"ws:::gen-ws-token"}`},
		{7, "", "application/json", `{"role":"dev","permission":"USE","resource":"$CS"}`},
		{6, "", "text/plain", `{}`},
		{8, "alice", "application/json", `{}`},
		{9, "alice", "", ``},
		{10, "", "", ``},
		{11, "", "", ``},
		{12, "", "application/json", `{}`},
		{13, "", "application/json", `{"enabled":true}`},
	} {
		f.Add(s.route, s.user, s.ctype, s.body)
	}
	f.Fuzz(func(t *testing.T, route uint8, user, ctype, body string) {
		secrets := fuzztest.NewSecrets(t)
		body = secrets.Expand(body)
		rt := adminRoutes[int(route)%len(adminRoutes)]
		if user == "" {
			user = "alice"
		}
		path := strings.NewReplacer("$USER", user, "$TOKEN", tok.ID, "$CLIENT", client.ClientID).Replace(rt.path)
		r := httptest.NewRequest(http.MethodGet, "/", strings.NewReader(body))
		r.Method, r.URL.Path = rt.method, path
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		w := httptest.NewRecorder()
		if err := api.ServeHTTP(w, r); err != nil {
			secrets.CheckError(t, err)
			apierr.Write(w, apierr.For(err), apierr.Challenge{})
		}
		secrets.CheckAnswer(t, w.Code, w.Header(), w.Body.String())
		for _, bad := range issued {
			if strings.Contains(w.Body.String(), bad) {
				t.Fatalf("%s %s answered %d with %q in it: %s", rt.method, path, w.Code, bad, w.Body)
			}
		}
	})
}
