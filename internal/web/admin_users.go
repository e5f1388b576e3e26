package web

import (
	"net/http"
	"slices"
	"strings"

	"github.com/tokengate/tokengate/internal/acl"
	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/users"
)

// usersData is the list of users.
type usersData struct {
	// Q is the search text (a part of the name, any case).
	Q string
	// Rows are the users that match, Total how many there are in all.
	Rows  []users.View
	Total int
	// Self is the signed-in administrator's name.
	Self string
	// MinPassword and MaxPassword bound a password's length.
	MinPassword, MaxPassword int
}

func (u *UI) usersPage(req *request) error {
	all, err := u.opts.Users.List(req.r.Context())
	if err != nil {
		return err
	}
	q := strings.TrimSpace(req.r.URL.Query().Get("q"))
	d := usersData{Q: q, Total: len(all), Self: req.active.User.Name, MinPassword: users.MinPasswordLen, MaxPassword: users.MaxPasswordLen}
	needle := strings.ToLower(q)
	for _, v := range all {
		if strings.Contains(strings.ToLower(v.Name), needle) {
			d.Rows = append(d.Rows, v)
		}
	}
	return u.render(req, http.StatusOK, "admin_users", u.newView(req, "admin.users.title", "users", d))
}

// formRoles reads the roles of a user form: the "admin" check box and
// the other roles typed in "roles".
func formRoles(req *request) []string {
	f := req.r.PostForm
	roles := splitList(f.Get("roles"))
	if f.Get("admin") != "" {
		roles = append(roles, users.RoleAdmin)
	}
	return roles
}

// createUser adds a user from the "Add user" dialog.
func (u *UI) createUser(req *request) error {
	f := req.r.PostForm
	v, err := u.opts.Users.Create(req.r.Context(), users.NewUser{
		Name: strings.TrimSpace(f.Get("name")), Password: f.Get("password"),
		Roles: formRoles(req), TokenLogin: f.Get("token_login") != "",
	})
	if err != nil {
		return err
	}
	return u.done(req, v, "/admin/users")
}

// userData is one user's page.
type userData struct {
	User users.View
	// Self: this is the signed-in administrator.
	Self bool
	// IsAdmin: the user has the admin role; OtherRoles are the others.
	IsAdmin    bool
	OtherRoles []string
	// Grants name the user; RoleGrants name one of its roles.
	Grants     []acl.Grant
	RoleGrants []acl.Grant
	Tokens     []tokenRow
	// MinPassword and MaxPassword bound a password's length.
	MinPassword, MaxPassword int
	// Resource is the resource the permission form suggests (seed 004).
	Resource string
}

// defaultResource is the resource of /rest/token (seed 004).
const defaultResource = "ws:::gen-ws-token"

func (u *UI) userPage(req *request) error {
	ctx := req.r.Context()
	v, err := u.opts.Users.Get(ctx, req.r.PathValue("name"))
	if err != nil {
		return err
	}
	d := userData{
		User: v, Self: v.Name == req.active.User.Name, IsAdmin: slices.Contains(v.Roles, users.RoleAdmin),
		MinPassword: users.MinPasswordLen, MaxPassword: users.MaxPasswordLen, Resource: defaultResource,
	}
	for _, r := range v.Roles {
		if r != users.RoleAdmin {
			d.OtherRoles = append(d.OtherRoles, r)
		}
	}
	grants, err := u.opts.ACL.List(ctx)
	if err != nil {
		return err
	}
	for _, g := range grants {
		switch {
		case g.User == v.Name:
			d.Grants = append(d.Grants, g)
		case g.Role != "" && slices.Contains(v.Roles, g.Role):
			d.RoleGrants = append(d.RoleGrants, g)
		}
	}
	tokens, err := u.opts.Tokens.List(ctx, v.Name)
	if err != nil {
		return err
	}
	now := u.now()
	for _, t := range tokens {
		d.Tokens = append(d.Tokens, tokenRow{View: t, Status: status(t, now)})
	}
	slices.Reverse(d.Tokens) // newest first, as on the user's own page
	return u.render(req, http.StatusOK, "admin_user", u.newView(req, "admin.user.title", "users", d))
}

// target returns the canonical name of the page's user and whether it is
// the signed-in administrator.
func (u *UI) target(req *request) (name string, self bool) {
	name = users.CanonicalName(req.r.PathValue("name"))
	return name, name != "" && name == req.active.User.Name
}

// updateUser carries out one action of the user's page (or of the list's
// token login switch): password, disable, enable, roles, token_login.
// An administrator cannot disable themselves or take away their own
// admin role.
func (u *UI) updateUser(req *request) error {
	ctx := req.r.Context()
	f := req.r.PostForm
	name, self := u.target(req)
	var c users.Changes
	// users.Service.Update ends the user's sessions where it must (a new
	// password, disabled, token login off), as it does for the admin API.
	switch f.Get("action") {
	case "password":
		pw := f.Get("password")
		c.Password = &pw
	case "disable":
		if self {
			return refuse(apierr.ErrForbidden, "admin.err.self_disable", "")
		}
		on := true
		c.Disabled = &on
	case "enable":
		off := false
		c.Disabled = &off
	case "roles":
		roles := formRoles(req)
		if self && !slices.Contains(roles, users.RoleAdmin) {
			return refuse(apierr.ErrForbidden, "admin.err.self_admin", "admin")
		}
		c.Roles = &roles
	case "token_login":
		on := f.Get("token_login") == "on"
		c.TokenLogin = &on
	default:
		return errUnknownAction
	}
	v, err := u.opts.Users.Update(ctx, name, c)
	if err != nil {
		return err
	}
	page := "/admin/users/" + v.Name
	if f.Get("back") == "list" {
		page = "/admin/users"
	}
	return u.done(req, v, page)
}

// deleteUser deletes a user, its tokens and its sessions; never the
// signed-in administrator.
func (u *UI) deleteUser(req *request) error {
	ctx := req.r.Context()
	name, self := u.target(req)
	if self {
		return refuse(apierr.ErrForbidden, "admin.err.self_delete", "")
	}
	// The store removes the user's sessions with the user.
	if err := u.opts.Users.Delete(ctx, name); err != nil {
		return err
	}
	return u.done(req, map[string]string{"deleted": name}, "/admin/users")
}

// formGrant reads a permission of the user's page.
func (u *UI) formGrant(req *request) (acl.Grant, error) {
	v, err := u.opts.Users.Get(req.r.Context(), req.r.PathValue("name"))
	if err != nil {
		return acl.Grant{}, err
	}
	f := req.r.PostForm
	return acl.Grant{User: v.Name, Action: f.Get("permission"), Resource: f.Get("resource")}, nil
}

// grantUser grants the user a permission (seed 004: "use" on
// "ws:::gen-ws-token").
func (u *UI) grantUser(req *request) error {
	g, err := u.formGrant(req)
	if err != nil {
		return err
	}
	grants, err := u.opts.ACL.Grant(req.r.Context(), g)
	if err != nil {
		return err
	}
	return u.done(req, map[string]any{"grants": grants}, "/admin/users/"+g.User)
}

// revokeUserGrant takes a permission back from the user.
func (u *UI) revokeUserGrant(req *request) error {
	g, err := u.formGrant(req)
	if err != nil {
		return err
	}
	grants, err := u.opts.ACL.Revoke(req.r.Context(), g)
	if err != nil {
		return err
	}
	return u.done(req, map[string]any{"grants": grants}, "/admin/users/"+g.User)
}

// revokeUserToken deletes one of the user's tokens.
func (u *UI) revokeUserToken(req *request) error {
	name, _ := u.target(req)
	id := req.r.PathValue("id")
	if err := u.opts.Tokens.Delete(req.r.Context(), name, id); err != nil {
		return err
	}
	return u.done(req, map[string]string{"revoked": id}, "/admin/users/"+name)
}
