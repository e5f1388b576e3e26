package web

import (
	"errors"
	"net/http"

	"github.com/tokengate/tokengate/internal/apierr"
)

// adminRoutes registers the administrator's pages: users (seed 000's
// "Allow login by token", permissions of seed 004, the users' tokens),
// OAuth keys (seed 001), JWT signing (seed 003) and the OAuth token
// request log (seed 001). Every action goes through the services the
// admin API uses.
func (u *UI) adminRoutes() {
	u.handle("GET", "/admin", admin, u.adminHome)
	u.handle("GET", "/admin/{$}", admin, u.adminHome)

	u.handle("GET", "/admin/users", admin, u.usersPage)
	u.handle("POST", "/admin/users", admin, u.createUser)
	u.handle("GET", "/admin/users/{name}", admin, u.userPage)
	u.handle("POST", "/admin/users/{name}", admin, u.updateUser)
	u.handle("POST", "/admin/users/{name}/delete", admin, u.deleteUser)
	u.handle("POST", "/admin/users/{name}/grants", admin, u.grantUser)
	u.handle("POST", "/admin/users/{name}/grants/revoke", admin, u.revokeUserGrant)
	u.handle("POST", "/admin/users/{name}/tokens/{id}/revoke", admin, u.revokeUserToken)

	u.handle("GET", "/admin/oauth", admin, u.oauthPage)
	u.handle("POST", "/admin/oauth", admin, u.createClient)
	u.handle("POST", "/admin/oauth/{id}", admin, u.updateClient)
	u.handle("POST", "/admin/oauth/{id}/delete", admin, u.deleteClient)

	u.handle("GET", "/admin/signing", admin, u.signingPage)
	u.handle("POST", "/admin/signing/lifetime", admin, u.setLifetime)
	u.handle("POST", "/admin/signing/key", admin, u.changeKey)

	u.handle("GET", "/admin/log", admin, u.logPage)
}

// adminHome sends the administrator to the users.
func (u *UI) adminHome(req *request) error {
	http.Redirect(req.w, req.r, u.url("/admin/users"), http.StatusSeeOther)
	return nil
}

// refuse is a refusal of the pages' own with a message of the catalogue.
func refuse(err error, key, field string) error {
	return &pageRefusal{Err: err, Key: key, Field: field}
}

// errUnknownAction refuses a form whose action field names nothing.
var errUnknownAction = apierr.Field("action", errors.New("unknown action"))
