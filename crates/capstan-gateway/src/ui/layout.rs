//! The page shell: the left menu (only what the viewer may use), the top
//! bar with the user menu and the theme switch, and the login page's frame.

use maud::{html, Markup, DOCTYPE};

use super::Viewer;

/// One menu entry: path, label, whether only admins see it.
pub(super) struct Entry {
    pub path: &'static str,
    pub label: &'static str,
    pub admin: bool,
}

/// The menu, by section: what each page is called and who sees it.
pub(super) const MENU: &[(&str, &[Entry])] = &[
    (
        "",
        &[Entry {
            path: "/ui/",
            label: "Dashboard",
            admin: false,
        }],
    ),
    (
        "Access Control",
        &[
            Entry {
                path: "/ui/orgs",
                label: "Orgs & Teams",
                admin: false,
            },
            Entry {
                path: "/ui/users",
                label: "Users",
                admin: false,
            },
            Entry {
                path: "/ui/roles",
                label: "Roles",
                admin: false,
            },
            Entry {
                path: "/ui/grants",
                label: "Grants",
                admin: false,
            },
            Entry {
                path: "/ui/access",
                label: "Access Matrix",
                admin: true,
            },
        ],
    ),
    (
        "Shared Resources",
        &[
            Entry {
                path: "/ui/collections",
                label: "Collections",
                admin: false,
            },
            Entry {
                path: "/ui/stacks",
                label: "Stacks",
                admin: false,
            },
            Entry {
                path: "/ui/containers",
                label: "Containers",
                admin: false,
            },
            Entry {
                path: "/ui/images",
                label: "Images",
                admin: false,
            },
            Entry {
                path: "/ui/nodes",
                label: "Nodes",
                admin: false,
            },
            Entry {
                path: "/ui/registry",
                label: "Repositories",
                admin: false,
            },
        ],
    ),
    (
        "Swarm",
        &[
            Entry {
                path: "/ui/services",
                label: "Services",
                admin: false,
            },
            Entry {
                path: "/ui/networks",
                label: "Networks",
                admin: false,
            },
            Entry {
                path: "/ui/volumes",
                label: "Volumes",
                admin: false,
            },
            Entry {
                path: "/ui/secrets",
                label: "Secrets",
                admin: false,
            },
            Entry {
                path: "/ui/configs",
                label: "Configs",
                admin: false,
            },
        ],
    ),
    (
        "Kubernetes",
        &[Entry {
            path: "/ui/kubernetes",
            label: "Namespaces & Pods",
            admin: false,
        }],
    ),
    (
        "Admin Settings",
        &[
            Entry {
                path: "/ui/settings/authentication",
                label: "Authentication & Authorization",
                admin: true,
            },
            Entry {
                path: "/ui/settings/registry",
                label: "Registry",
                admin: true,
            },
            Entry {
                path: "/ui/license",
                label: "License",
                admin: true,
            },
            Entry {
                path: "/ui/settings/trust",
                label: "Content Trust",
                admin: true,
            },
            Entry {
                path: "/ui/settings/audit",
                label: "Audit Log",
                admin: true,
            },
            Entry {
                path: "/ui/settings/certificates",
                label: "Certificates",
                admin: true,
            },
            Entry {
                path: "/ui/settings/config",
                label: "Cluster Configuration",
                admin: true,
            },
            Entry {
                path: "/ui/settings/support",
                label: "Support Bundle",
                admin: true,
            },
        ],
    ),
    (
        "Me",
        &[Entry {
            path: "/ui/profile",
            label: "My Profile",
            admin: false,
        }],
    ),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Capstan" }
            link rel="icon" href="data:,";
            link rel="stylesheet" href="/ui/assets/app.css";
            script src="/ui/assets/app.js" defer {}
        }
    }
}

/// A page of the console: menu, top bar, `body`.
pub fn page(viewer: &Viewer, current: &str, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                div.shell {
                    nav.menu aria-label="Main menu" {
                        div.brand { "Capstan" }
                        @for (section, entries) in MENU {
                            @let visible: Vec<&Entry> = entries.iter().filter(|e| viewer.admin || !e.admin).collect();
                            @if !visible.is_empty() {
                                @if !section.is_empty() { h2 { (section) } }
                                @for e in visible {
                                    @if e.path == current {
                                        a href=(e.path) aria-current="page" { (e.label) }
                                    } @else {
                                        a href=(e.path) { (e.label) }
                                    }
                                }
                            }
                        }
                        h2 { "Help" }
                        @if current == "/ui/about" {
                            a href="/ui/about" aria-current="page" { "About" }
                        } @else {
                            a href="/ui/about" { "About" }
                        }
                    }
                    main {
                        header.top {
                            h1 { (title) }
                            div.user {
                                span #whoami { (viewer.username) @if viewer.admin { " (admin)" } }
                                button.secondary type="button" data-theme-toggle aria-label="Switch between dark and light themes" { "Theme" }
                                form method="post" action="/ui/logout" {
                                    input type="hidden" name="csrf" value=(viewer.csrf);
                                    button.secondary type="submit" { "Log out" }
                                }
                            }
                        }
                        (body)
                    }
                }
            }
        }
    }
}

/// A page outside the console (login).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body { main.login { (body) } }
        }
    }
}

/// A table with a filter box, sorted by clicking a header, paged.
pub fn table(id: &str, headers: &[&str], rows: Vec<Markup>, empty: &str) -> Markup {
    html! {
        @if rows.is_empty() {
            p.empty { (empty) }
        } @else {
            div.tools {
                input type="search" placeholder="Filter" aria-label="Filter the table" data-filter=(id);
            }
            table #(id) data-table {
                thead { tr { @for h in headers { th scope="col" { (h) } } } }
                tbody { @for r in rows { (r) } }
            }
        }
    }
}

/// An error shown in place, above the form that caused it.
pub fn error(message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message { div.error role="alert" { (m) } }
    }
}
