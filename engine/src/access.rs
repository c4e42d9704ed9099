//! Who may do what to a module. Pure rules over the module's settings, tested as a table;
//! the store calls [`check`] before every operation.
//!
//! - the owner and administrators may do everything;
//! - other signed-in users get what the module's public rights give: read, write (save new
//!   versions, create children in a project), deploy;
//! - anyone, signed in or not, may read a published module;
//! - deleting and changing rights or publication stay with the owner and administrators.

use model::PublicRights;

use crate::{Error, Result, User};

/// The signed-in user, or `None` for an anonymous visitor.
pub type Actor<'a> = Option<&'a User>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    /// Save a new version, restore one, or create a child of a project.
    Write,
    Deploy,
    Delete,
    /// Change public rights or publication.
    Share,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "change",
            Op::Deploy => "deploy",
            Op::Delete => "delete",
            Op::Share => "change the rights of",
        }
    }
}

/// The settings of a module that decide access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub owner: String,
    pub public: PublicRights,
    pub published: bool,
}

pub fn allowed(actor: Actor, m: &Access, op: Op) -> bool {
    match actor {
        None => op == Op::Read && m.published,
        Some(u) if u.is_admin || u.name == m.owner => true,
        Some(_) => match op {
            Op::Read => m.public.read || m.published,
            Op::Write => m.public.write,
            Op::Deploy => m.public.deploy,
            Op::Delete | Op::Share => false,
        },
    }
}

/// [`allowed`] as a result: 401 for an anonymous visitor, 403 for a signed-in user.
pub fn check(actor: Actor, path: &str, m: &Access, op: Op) -> Result<()> {
    if allowed(actor, m, op) {
        return Ok(());
    }
    Err(match actor {
        None => Error::Unauthorized(format!("sign in to {} module `{path}`", op.verb())),
        Some(u) => Error::Forbidden(format!("user `{}` may not {} module `{path}`", u.name, op.verb())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, admin: bool) -> User {
        User { name: name.into(), is_admin: admin }
    }

    #[test]
    fn rights_matrix() {
        let owner = user("olivia", false);
        let other = user("oscar", false);
        let admin = user("ada", true);
        let private = Access { owner: "olivia".into(), public: PublicRights::default(), published: false };
        let readable = Access { public: PublicRights { read: true, ..Default::default() }, ..private.clone() };
        let writable = Access { public: PublicRights { read: true, write: true, deploy: false }, ..private.clone() };
        let deployable = Access { public: PublicRights { read: true, deploy: true, write: false }, ..private.clone() };
        let published = Access { published: true, ..private.clone() };
        use Op::*;
        // (module, op, anonymous, owner, other, admin)
        let table = [
            (&private, Read, false, true, false, true),
            (&private, Write, false, true, false, true),
            (&private, Deploy, false, true, false, true),
            (&private, Delete, false, true, false, true),
            (&private, Share, false, true, false, true),
            (&readable, Read, false, true, true, true),
            (&readable, Write, false, true, false, true),
            (&readable, Deploy, false, true, false, true),
            (&writable, Write, false, true, true, true),
            (&writable, Delete, false, true, false, true),
            (&writable, Share, false, true, false, true),
            (&deployable, Deploy, false, true, true, true),
            (&deployable, Write, false, true, false, true),
            (&published, Read, true, true, true, true),
            (&published, Write, false, true, false, true),
            (&published, Deploy, false, true, false, true),
        ];
        for (m, op, anon, own, oth, adm) in table {
            let got = (allowed(None, m, op), allowed(Some(&owner), m, op), allowed(Some(&other), m, op), allowed(Some(&admin), m, op));
            assert_eq!(got, (anon, own, oth, adm), "{op:?} on {m:?}");
        }
    }

    #[test]
    fn refusals_say_who_and_what() {
        let m = Access { owner: "olivia".into(), public: PublicRights::default(), published: false };
        assert!(matches!(check(None, "a/b", &m, Op::Read), Err(Error::Unauthorized(s)) if s.contains("sign in")));
        let other = user("oscar", false);
        let e = check(Some(&other), "a/b", &m, Op::Delete).unwrap_err().to_string();
        assert_eq!(e, "user `oscar` may not delete module `a/b`");
    }
}
