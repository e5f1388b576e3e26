package acl_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tokengate/tokengate/internal/acl"
	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/testutil/pausetest"
)

const resource = "ws:::gen-ws-token"

func openStore(t *testing.T) *boltstore.Store {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func mustGrant(t *testing.T, a *acl.ACL, g acl.Grant) []acl.Grant {
	t.Helper()
	gs, err := a.Grant(context.Background(), g)
	if err != nil {
		t.Fatalf("Grant(%+v): %v", g, err)
	}
	return gs
}

func allowed(t *testing.T, a *acl.ACL, u store.User, action, res string) bool {
	t.Helper()
	ok, err := a.Allowed(context.Background(), u, action, res)
	if err != nil {
		t.Fatalf("Allowed: %v", err)
	}
	return ok
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name  string
		in    acl.Grant
		want  acl.Grant
		field string // "" if valid
	}{
		{"role", acl.Grant{Role: " Dev ", Action: "use", Resource: resource}, acl.Grant{Role: "dev", Action: "use", Resource: resource}, ""},
		{"user", acl.Grant{User: "Bob", Action: "use", Resource: resource}, acl.Grant{User: "bob", Action: "use", Resource: resource}, ""},
		{"USE folds to use", acl.Grant{User: "bob", Action: "USE", Resource: resource}, acl.Grant{User: "bob", Action: "use", Resource: resource}, ""},
		{"neither role nor user", acl.Grant{Action: "use", Resource: resource}, acl.Grant{}, "role"},
		{"both role and user", acl.Grant{Role: "dev", User: "bob", Action: "use", Resource: resource}, acl.Grant{}, "role"},
		{"blank role and user", acl.Grant{Role: " ", User: "\t", Action: "use", Resource: resource}, acl.Grant{}, "role"},
		{"no action", acl.Grant{User: "bob", Resource: resource}, acl.Grant{}, "permission"},
		{"action with space", acl.Grant{User: "bob", Action: "us e", Resource: resource}, acl.Grant{}, "permission"},
		{"empty resource", acl.Grant{User: "bob", Action: "use", Resource: "  "}, acl.Grant{}, "resource"},
		{"resource with space", acl.Grant{User: "bob", Action: "use", Resource: "ws::: gen"}, acl.Grant{}, "resource"},
		{"resource with control character", acl.Grant{User: "bob", Action: "use", Resource: "ws:::\x00gen"}, acl.Grant{}, "resource"},
		{"resource too long", acl.Grant{User: "bob", Action: "use", Resource: string(make([]byte, 257))}, acl.Grant{}, "resource"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.Normalize()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Normalize: %v", err)
				}
				if got != tt.want {
					t.Fatalf("Normalize = %+v, want %+v", got, tt.want)
				}
				return
			}
			var fe *apierr.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Normalize err = %v, want a field error on %q", err, tt.field)
			}
			if p := apierr.For(err); p.Status != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400", p.Status)
			}
		})
	}
}

func TestGrantIsIdempotentAndListed(t *testing.T) {
	a := acl.New(openStore(t))
	g := acl.Grant{Role: "dev", Action: "use", Resource: resource}
	mustGrant(t, a, g)
	// The same grant spelled differently is the same grant.
	gs := mustGrant(t, a, acl.Grant{Role: "DEV", Action: "Use", Resource: resource})
	if len(gs) != 1 || gs[0] != g {
		t.Fatalf("after granting twice: %+v, want [%+v]", gs, g)
	}
	other := acl.Grant{User: "bob", Action: "read", Resource: "docs"}
	mustGrant(t, a, other)
	list, err := a.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := []acl.Grant{g, other}; !slices.Equal(list, want) {
		t.Fatalf("List = %+v, want %+v", list, want)
	}
}

func TestListEmpty(t *testing.T) {
	list, err := acl.New(openStore(t)).List(context.Background())
	if err != nil || list == nil || len(list) != 0 {
		t.Fatalf("List = %#v, %v; want an empty, non-nil list", list, err)
	}
}

func TestRevoke(t *testing.T) {
	a := acl.New(openStore(t))
	g := acl.Grant{User: "bob", Action: "use", Resource: resource}
	keep := acl.Grant{Role: "dev", Action: "use", Resource: resource}
	mustGrant(t, a, g)
	mustGrant(t, a, keep)
	bob := store.User{Name: "bob"}

	gs, err := a.Revoke(context.Background(), acl.Grant{User: "BOB", Action: "USE", Resource: resource})
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if !slices.Equal(gs, []acl.Grant{keep}) {
		t.Fatalf("after Revoke: %+v, want [%+v]", gs, keep)
	}
	if allowed(t, a, bob, "use", resource) {
		t.Fatal("bob is still allowed after the revoke")
	}

	_, err = a.Revoke(context.Background(), g)
	if p := apierr.For(err); p.Status != http.StatusNotFound {
		t.Fatalf("revoking a missing grant: err = %v, status %d, want 404", err, p.Status)
	}
	if list, _ := a.List(context.Background()); !slices.Equal(list, []acl.Grant{keep}) {
		t.Fatalf("a failed revoke changed the list: %+v", list)
	}
}

func TestAllowed(t *testing.T) {
	a := acl.New(openStore(t))
	mustGrant(t, a, acl.Grant{User: "bob", Action: "use", Resource: resource})
	mustGrant(t, a, acl.Grant{Role: "dev", Action: "use", Resource: resource})
	tests := []struct {
		name     string
		user     store.User
		action   string
		resource string
		want     bool
	}{
		{"admin role on anything", store.User{Name: "root", Roles: []string{"ops", acl.AdminRole}}, "delete", "anything", true},
		{"user grant", store.User{Name: "bob"}, "use", resource, true},
		{"user grant, action in upper case", store.User{Name: "bob"}, "USE", resource, true},
		{"role grant", store.User{Name: "carol", Roles: []string{"dev"}}, "use", resource, true},
		{"no grant", store.User{Name: "dave", Roles: []string{"ops"}}, "use", resource, false},
		{"user grant, another resource", store.User{Name: "bob"}, "use", "ws:::other", false},
		{"user grant, another action", store.User{Name: "bob"}, "read", resource, false},
		{"role grant, another resource", store.User{Name: "carol", Roles: []string{"dev"}}, "use", "ws:::other", false},
		{"role grant, another action", store.User{Name: "carol", Roles: []string{"dev"}}, "read", resource, false},
		{"a role named like the user", store.User{Name: "dev"}, "use", "ws:::other", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := allowed(t, a, tt.user, tt.action, tt.resource); got != tt.want {
				t.Fatalf("Allowed = %v, want %v", got, tt.want)
			}
		})
	}
}

// Two nodes share one store: B has cached the list, A changes it, and B
// sees the change once it is invalidated (which the EventDocument handler
// does).
func TestInvalidateReloadsAfterAnotherNodesGrant(t *testing.T) {
	st := openStore(t)
	nodeA, nodeB := acl.New(st), acl.New(st)
	bob := store.User{Name: "bob"}
	if allowed(t, nodeB, bob, "use", resource) {
		t.Fatal("bob allowed before any grant")
	}

	mustGrant(t, nodeA, acl.Grant{User: "bob", Action: "use", Resource: resource})
	if !allowed(t, nodeA, bob, "use", resource) {
		t.Fatal("node A does not see its own grant")
	}
	if allowed(t, nodeB, bob, "use", resource) {
		t.Fatal("node B reloaded without an Invalidate")
	}
	nodeB.Invalidate()
	if !allowed(t, nodeB, bob, "use", resource) {
		t.Fatal("node B does not see the grant after Invalidate")
	}

	if _, err := nodeA.Revoke(context.Background(), acl.Grant{User: "bob", Action: "use", Resource: resource}); err != nil {
		t.Fatal(err)
	}
	nodeB.Invalidate()
	if allowed(t, nodeB, bob, "use", resource) {
		t.Fatal("node B still allows bob after the revoke and Invalidate")
	}
}

// pausingStore is the real store whose GetDocument, once armed, reads the
// document and then waits, so that a change can land between the read
// and its use.
type pausingStore struct {
	*boltstore.Store
	*pausetest.Gate
}

func (p *pausingStore) GetDocument(ctx context.Context, name string) ([]byte, error) {
	b, err := p.Store.GetDocument(ctx, name)
	p.Hold()
	return b, err
}

// An Invalidate that arrives while B is reading the list must not leave
// B with the list it was reading (it may predate the change).
func TestInvalidateDuringLoadIsNotLost(t *testing.T) {
	st := openStore(t)
	ps := &pausingStore{Store: st, Gate: pausetest.New()}
	nodeA, nodeB := acl.New(st), acl.New(ps)
	bob := store.User{Name: "bob"}

	ps.Arm()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = nodeB.Allowed(context.Background(), bob, "use", resource)
	}()
	ps.Read() // B has read the list without the grant
	mustGrant(t, nodeA, acl.Grant{User: "bob", Action: "use", Resource: resource})
	nodeB.Invalidate() // the grant's EventDocument
	ps.Release()
	<-done

	if !allowed(t, nodeB, bob, "use", resource) {
		t.Fatal("node B kept the list it read before the Invalidate")
	}
}

// A question asked after an Invalidate must not share the read begun
// before it (which may predate the change the Invalidate announced).
func TestQuestionAfterInvalidateDoesNotShareEarlierLoad(t *testing.T) {
	st := openStore(t)
	ps := &pausingStore{Store: st, Gate: pausetest.New()}
	nodeA, nodeB := acl.New(st), acl.New(ps)
	bob := store.User{Name: "bob"}
	ask := func() (bool, error) { return nodeB.Allowed(context.Background(), bob, "use", resource) }

	ps.Arm()
	first := pausetest.Go(t, ask)
	ps.Read() // B has read the list without the grant
	mustGrant(t, nodeA, acl.Grant{User: "bob", Action: "use", Resource: resource})
	nodeB.Invalidate() // the grant's EventDocument
	later := pausetest.Within(t, ps.Gate, pausetest.Go(t, ask),
		"a question after the Invalidate waited for the read begun before it")
	ps.Release()
	if <-first {
		t.Error("the first question saw a grant made after its read")
	}
	if !later {
		t.Error("a question after the Invalidate did not see the grant")
	}
}
