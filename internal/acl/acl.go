// Package acl keeps the permissions of seed 004: grants of an action
// ("use") on a resource ("ws:::gen-ws-token") to a role or to a user. The
// admin role is allowed everything. The list is one document in the
// store, so every node applies the same grants, and it is reloaded after
// its EventDocument.
package acl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/nodecopy"
	"github.com/tokengate/tokengate/internal/store"
)

// AdminRole is allowed every action on every resource.
const AdminRole = "admin"

// Grant allows Action on Resource to a Role or a User (one of the two).
type Grant struct {
	Role     string `json:"role,omitempty"`
	User     string `json:"user,omitempty"`
	Action   string `json:"permission"`
	Resource string `json:"resource"`
}

// Normalize checks a grant: exactly one of role and user; action folded
// to lower case (USE = use); resource without spaces.
func (g Grant) Normalize() (Grant, error) {
	g.Role, g.User = strings.ToLower(strings.TrimSpace(g.Role)), strings.ToLower(strings.TrimSpace(g.User))
	g.Action, g.Resource = strings.ToLower(strings.TrimSpace(g.Action)), strings.TrimSpace(g.Resource)
	switch {
	case (g.Role == "") == (g.User == ""):
		return g, apierr.Field("role", errors.New("give exactly one of role and user"))
	case g.Action == "" || len(g.Action) > 64 || strings.IndexFunc(g.Action, unicode.IsSpace) >= 0:
		return g, apierr.Field("permission", errors.New("must be a word of at most 64 characters"))
	case g.Resource == "" || len(g.Resource) > 256 || strings.IndexFunc(g.Resource, unicode.IsSpace) >= 0 || strings.IndexFunc(g.Resource, unicode.IsControl) >= 0:
		return g, apierr.Field("resource", errors.New("must be 1-256 characters without spaces"))
	}
	return g, nil
}

// document is the stored form.
type document struct {
	Grants []Grant `json:"grants"`
}

// ACL answers permission questions from this node's copy of the list.
type ACL struct {
	store store.Documents
	cur   *nodecopy.Copy[*document]
}

// New returns an ACL that loads itself on first use.
func New(s store.Documents) *ACL {
	a := &ACL{store: s}
	a.cur = nodecopy.New(a.read, nodecopy.Options[*document]{})
	return a
}

// Invalidate makes the next question reload the list (after its event).
// A question already reading it gets what it read.
func (a *ACL) Invalidate() { a.cur.Invalidate() }

// read reads the stored list (none stored: no grants).
func (a *ACL) read(ctx context.Context) (*document, error) {
	b, err := a.store.GetDocument(ctx, store.DocACL)
	d := &document{}
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, apierr.FromStore(err)
	default:
		if err := json.Unmarshal(b, d); err != nil {
			return nil, fmt.Errorf("decoding the ACL: %v", err)
		}
	}
	return d, nil
}

// Allowed reports whether u may do action on resource: u has the admin
// role, or a grant names u or one of u's roles.
func (a *ACL) Allowed(ctx context.Context, u store.User, action, resource string) (bool, error) {
	if slices.Contains(u.Roles, AdminRole) {
		return true, nil
	}
	d, err := a.cur.Get(ctx)
	if err != nil {
		return false, err
	}
	action = strings.ToLower(action)
	for _, g := range d.Grants {
		if g.Action == action && g.Resource == resource && (g.User == u.Name || (g.Role != "" && slices.Contains(u.Roles, g.Role))) {
			return true, nil
		}
	}
	return false, nil
}

// List returns every grant, read from the store (not this node's copy).
func (a *ACL) List(ctx context.Context) ([]Grant, error) {
	d, err := a.read(ctx)
	if err != nil {
		return nil, err
	}
	if d.Grants == nil {
		d.Grants = []Grant{}
	}
	return d.Grants, nil
}

// Grant adds g (a no-op if it is there already).
func (a *ACL) Grant(ctx context.Context, g Grant) ([]Grant, error) {
	g, err := g.Normalize()
	if err != nil {
		return nil, err
	}
	return a.update(ctx, func(d *document) {
		if !slices.Contains(d.Grants, g) {
			d.Grants = append(d.Grants, g)
		}
	})
}

// Revoke removes g; apierr.ErrNotFound if it was not granted.
func (a *ACL) Revoke(ctx context.Context, g Grant) ([]Grant, error) {
	g, err := g.Normalize()
	if err != nil {
		return nil, err
	}
	found := false
	grants, err := a.update(ctx, func(d *document) {
		n := len(d.Grants)
		d.Grants = slices.DeleteFunc(d.Grants, func(x Grant) bool { return x == g })
		found = len(d.Grants) != n
	})
	if err == nil && !found {
		return nil, apierr.ErrNotFound
	}
	return grants, err
}

func (a *ACL) update(ctx context.Context, change func(*document)) ([]Grant, error) {
	var out document
	_, err := a.store.UpdateDocument(ctx, store.DocACL, func(cur []byte) ([]byte, error) {
		out = document{}
		if cur != nil {
			if err := json.Unmarshal(cur, &out); err != nil {
				return nil, fmt.Errorf("decoding the ACL: %v", err)
			}
		}
		change(&out)
		return json.Marshal(out)
	})
	if err != nil {
		return nil, apierr.FromStore(err)
	}
	a.Invalidate()
	if out.Grants == nil {
		out.Grants = []Grant{}
	}
	return out.Grants, nil
}
