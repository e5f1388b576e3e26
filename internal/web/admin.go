package web

// adminRoutes registers the administrator's pages.
func (u *UI) adminRoutes() {}
