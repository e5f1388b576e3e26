package adminapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/adminapi"
	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
)

// backupAPI is an API with only the backup routes wired, on a fresh
// embedded store.
func backupAPI(t *testing.T) (*adminapi.API, *boltstore.Store) {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	return &adminapi.API{Backup: st, Store: st, Now: func() time.Time { return at }}, st
}

// serve answers one request as caddymodule's admin route does, except
// that a StreamError is reported rather than cutting the connection.
func serve(t *testing.T, api *adminapi.API, method, path, contentType, body string) (*httptest.ResponseRecorder, error) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	err := api.ServeHTTP(w, r)
	var (
		se *adminapi.StreamError
		oe *adminapi.OperatorError
	)
	switch {
	case err == nil, errors.As(err, &se):
	case errors.As(err, &oe):
		apierr.Write(w, apierr.Problem{Status: oe.Status, Code: "operator", Description: oe.Error()}, apierr.Challenge{})
	default:
		apierr.Write(w, apierr.For(err), apierr.Challenge{})
	}
	return w, err
}

func TestExportImportRoutes(t *testing.T) {
	src, st := backupAPI(t)
	ctx := context.Background()
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	if err := st.CreateUser(ctx, store.User{Name: "alice", PasswordHash: "$2a$04$x", CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateToken(ctx, store.Token{ID: "t1", Owner: "alice", Kind: store.KindPAT, Hash: store.TokenHash{1}, CreatedAt: at}, 0); err != nil {
		t.Fatal(err)
	}

	w, err := serve(t, src, http.MethodGet, "/tokengate/store/export", "", "")
	if err != nil || w.Code != http.StatusOK {
		t.Fatalf("export: %d %v %s", w.Code, err, w.Body)
	}
	h := w.Header()
	if h.Get("Content-Type") != "application/json" || h.Get("Cache-Control") != "no-store" ||
		h.Get("Content-Disposition") != `attachment; filename="tokengate-export-20250601T120000Z.json"` {
		t.Fatalf("export headers: %v", h)
	}
	export := w.Body.String()
	if !strings.HasPrefix(export, `{"format":"tokengate-export","version":1,"exported_at":"2025-06-01T12:00:00Z",`) {
		t.Fatalf("export: %s", export)
	}

	dst, _ := backupAPI(t)
	for _, c := range []struct {
		name, method, contentType, body string
		status                          int
		want                            string
	}{
		{"GET import", http.MethodGet, "", "", http.StatusMethodNotAllowed, ""},
		{"POST export", http.MethodPost, "application/json", "{}", http.StatusMethodNotAllowed, ""},
		{"form", http.MethodPost, "application/x-www-form-urlencoded", export, http.StatusUnsupportedMediaType, ""},
		{"bad", http.MethodPost, "application/json", strings.Replace(export, `"owner":"alice"`, `"owner":"bob"`, 1), http.StatusBadRequest,
			`invalid export: tokens[0] (bob/t1): owner \"bob\" is not among the users`},
		{"good", http.MethodPost, "application/json", export, http.StatusOK,
			`{"imported":{"users":1,"tokens":1,"clients":0,"documents":0,"denials":0}}`},
		{"again", http.MethodPost, "application/json", export, http.StatusConflict, "the store is not empty: it holds 1 user;"},
	} {
		path := "/tokengate/store/import"
		if c.name == "POST export" {
			path = "/tokengate/store/export"
		}
		w, _ := serve(t, dst, c.method, path, c.contentType, c.body)
		if w.Code != c.status || !strings.Contains(w.Body.String(), c.want) {
			t.Fatalf("%s: %d %s, want %d with %s", c.name, w.Code, w.Body, c.status, c.want)
		}
	}
	w, _ = serve(t, dst, http.MethodGet, "/tokengate/store/export", "", "")
	if w.Body.String() != export {
		t.Fatalf("the import exports differently:\n%s\n%s", export, w.Body)
	}
}

// failingTokens fails every ListTokens, after the export has begun.
type failingTokens struct{ *boltstore.Store }

func (failingTokens) ListTokens(context.Context, string) ([]store.Token, error) {
	return nil, errors.New("store down")
}

// TestExportCutShort: a store failure after the answer has begun is a
// StreamError (the caller cuts the connection), never a second status.
func TestExportCutShort(t *testing.T) {
	api, st := backupAPI(t)
	if err := st.CreateUser(context.Background(), store.User{Name: "alice", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	api.Backup = failingTokens{st}
	w, err := serve(t, api, http.MethodGet, "/tokengate/store/export", "", "")
	var se *adminapi.StreamError
	if !errors.As(err, &se) || w.Code != http.StatusOK || strings.HasSuffix(w.Body.String(), "}\n") {
		t.Fatalf("export over a failing store: %v, %d %s", err, w.Code, w.Body)
	}
}
