//! The requests that change the tree's shape: create (Tcreate, Tlcreate),
//! rename (Twstat of the name, Trename) and attribute changes (Twstat).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use ninep::*;

use super::{Effect, Fid, OpenFile, Session, Version};
use crate::convert::*;
use crate::error::{Error, Result};
use crate::tree::*;

impl Session {
    pub(super) async fn create(&self, v: Version, m: Tcreate) -> Result<(Fcall, Effect)> {
        let dir = self.dir_fid(m.fid)?;
        let name = checked_name(&m.name)?;
        let perm = m.perm;
        let mode = OpenMode::from_9p(m.mode);
        if perm & dm::LINK != 0 {
            return self
                .create_link(v, &dir, m.fid, name, &m.extension, mode)
                .await;
        }
        let kind = if perm & dm::DIR != 0 {
            CreateKind::Dir { perm: perm & 0o777 }
        } else if perm & dm::SYMLINK != 0 {
            CreateKind::Symlink {
                target: m.extension.clone(),
            }
        } else if perm & (dm::DEVICE | dm::NAMEDPIPE | dm::SOCKET) != 0 {
            special_from_dotu(perm, &m.extension)?
        } else {
            CreateKind::File { perm: perm & 0o777 }
        };
        let is_file = matches!(kind, CreateKind::File { .. });
        let is_dir = matches!(kind, CreateKind::Dir { .. });
        if is_dir && (mode.write || mode.truncate) {
            return Err(Error::is_dir());
        }
        let (node, opened) = dir
            .node()?
            .create(name, kind, is_file.then_some(mode))
            .await?;
        // Tcreate leaves the fid open on the new file. A directory is
        // opened for reading. Symlinks, fifos and devices are not opened at
        // all (opening would follow the link or block on the fifo): the fid
        // holds them open for nothing but clunk, as QEMU's server does.
        let opened = match opened {
            Some(o) => o,
            None if is_dir => node.open(OpenMode::READ).await?,
            None => Opened::new(NoIo),
        };
        self.created(
            v,
            &dir,
            m.fid,
            node,
            name,
            mode,
            opened,
            m.mode & om::RCLOSE != 0,
            is_dir,
        )
        .map(|(qid, iounit, effect)| (Rcreate { qid, iounit }.into(), effect))
    }

    /// 9P2000.u hard link: Tcreate with DMLINK, the target named by fid in
    /// the extension (Linux sends it as decimal with a newline).
    async fn create_link(
        &self,
        v: Version,
        dir: &Fid,
        fid_no: u32,
        name: &str,
        extension: &str,
        mode: OpenMode,
    ) -> Result<(Fcall, Effect)> {
        let target_fid: u32 = extension.trim().parse().map_err(|_| {
            Error::invalid_arg(format!("bad link extension '{}'", extension.trim()))
        })?;
        let target = self.fid(target_fid)?;
        let dir_node = dir.node()?;
        dir_node.link(target.node()?, name).await?;
        let node = dir_node.walk(name).await?;
        self.created(
            v,
            dir,
            fid_no,
            node,
            name,
            mode,
            Opened::new(NoIo),
            false,
            false,
        )
        .map(|(qid, iounit, effect)| (Rcreate { qid, iounit }.into(), effect))
    }

    pub(super) async fn lcreate(&self, v: Version, m: Tlcreate) -> Result<(Fcall, Effect)> {
        let dir = self.dir_fid(m.fid)?;
        let name = checked_name(&m.name)?;
        let mode = OpenMode::from_linux(m.flags);
        let kind = CreateKind::File {
            perm: m.mode & 0o7777,
        };
        let (node, opened) = dir.node()?.create(name, kind, Some(mode)).await?;
        let opened = match opened {
            Some(o) => o,
            None => node.open(mode).await?,
        };
        self.created(v, &dir, m.fid, node, name, mode, opened, false, false)
            .map(|(qid, iounit, effect)| (Rlcreate { qid, iounit }.into(), effect))
    }

    /// The fid of a create now refers to the new, open file.
    #[allow(clippy::too_many_arguments)]
    fn created(
        &self,
        v: Version,
        dir: &Fid,
        fid_no: u32,
        node: Arc<dyn Node>,
        name: &str,
        mode: OpenMode,
        opened: Opened,
        remove_on_clunk: bool,
        is_dir: bool,
    ) -> Result<(Qid, u32, Effect)> {
        let mut path = dir.path.clone();
        let mut names = dir.names.clone();
        let qid = node.qid();
        path.push(node);
        names.push(name.to_owned());
        let iounit = clamp_iounit(opened.iounit, v);
        let open = OpenFile {
            handle: opened.handle,
            mode,
            remove_on_clunk,
            is_dir,
            iounit,
            dir: Default::default(),
        };
        let fid = Fid {
            path,
            names,
            qid,
            open: Some(Arc::new(open)),
            auth: None,
        };
        Ok((qid, iounit, Effect::Replace(fid_no, Arc::new(fid))))
    }

    pub(super) async fn wstat(&self, m: Twstat) -> Result<(Fcall, Effect)> {
        let fid = self.fid(m.fid)?;
        let node = fid.node()?;
        let st = &m.stat;
        let attr = node.attr().await?;
        let mut set = SetAttr::default();
        if st.mode != !0 {
            if (st.mode & dm::DIR != 0) != attr.is_dir() {
                return Err(Error::invalid_arg(
                    "wstat: cannot change a file's directory bit",
                ));
            }
            let mut perm = st.mode & 0o777;
            if st.mode & dm::SETUID != 0 {
                perm |= 0o4000;
            }
            if st.mode & dm::SETGID != 0 {
                perm |= 0o2000;
            }
            set.mode = Some(perm);
        }
        if st.atime != !0 {
            set.atime = Some(TimeSet::At(
                UNIX_EPOCH + Duration::from_secs(st.atime.into()),
            ));
        }
        if st.mtime != !0 {
            set.mtime = Some(TimeSet::At(
                UNIX_EPOCH + Duration::from_secs(st.mtime.into()),
            ));
        }
        if st.length != !0 {
            if attr.is_dir() {
                return Err(Error::is_dir());
            }
            set.size = Some(st.length);
        }
        if st.n_uid != !0 && st.n_uid != attr.uid {
            set.uid = Some(st.n_uid);
        }
        if st.n_gid != !0 && st.n_gid != attr.gid {
            set.gid = Some(st.n_gid);
        }
        let by_name = |s: &str, cur: &str| !s.is_empty() && s != cur;
        if set.uid.is_none() && by_name(&st.uid, &attr.uname) {
            return Err(Error::not_supported_msg(
                "wstat: changing the owner by name",
            ));
        }
        if set.gid.is_none() && by_name(&st.gid, &attr.gname) {
            return Err(Error::not_supported_msg(
                "wstat: changing the group by name",
            ));
        }
        let rename_to = (!st.name.is_empty() && st.name != fid.name())
            .then(|| checked_name(&st.name).map(str::to_owned))
            .transpose()?;
        // wstat(5): all changes happen or none; check the rename is
        // possible before touching attributes.
        let parent = match &rename_to {
            Some(_) => Some(
                fid.parent()
                    .ok_or_else(|| Error::new(libc::EBUSY, "cannot rename the root"))?
                    .clone(),
            ),
            None => None,
        };
        if !set.is_empty() {
            node.setattr(set).await?;
        }
        let mut effect = Effect::None;
        if let (Some(to), Some(parent)) = (rename_to, parent) {
            parent.rename(fid.name(), &parent, &to).await?;
            effect = self
                .renamed(
                    m.fid,
                    &fid,
                    &parent,
                    &fid.path[..fid.path.len() - 1],
                    &fid.names[..fid.names.len() - 1],
                    &to,
                )
                .await?;
        }
        Ok((Rwstat {}.into(), effect))
    }

    pub(super) async fn rename(&self, m: Trename) -> Result<(Fcall, Effect)> {
        let fid = self.fid(m.fid)?;
        let to_dir = self.dir_fid(m.dfid)?;
        let parent = fid
            .parent()
            .ok_or_else(|| Error::new(libc::EBUSY, "cannot rename the root"))?
            .clone();
        let to_name = checked_name(&m.name)?;
        parent.rename(fid.name(), to_dir.node()?, to_name).await?;
        let effect = self
            .renamed(
                m.fid,
                &fid,
                to_dir.node()?,
                &to_dir.path,
                &to_dir.names,
                to_name,
            )
            .await?;
        Ok((Rrename {}.into(), effect))
    }

    /// After a rename the fid follows the file to its new name.
    async fn renamed(
        &self,
        fid_no: u32,
        fid: &Fid,
        new_dir: &Arc<dyn Node>,
        dir_path: &[Arc<dyn Node>],
        dir_names: &[String],
        name: &str,
    ) -> Result<Effect> {
        let Ok(node) = new_dir.walk(name).await else {
            return Ok(Effect::None);
        };
        let mut path = dir_path.to_vec();
        let mut names = dir_names.to_vec();
        path.push(node);
        names.push(name.to_owned());
        let moved = Fid {
            qid: fid.qid,
            path,
            names,
            open: fid.open.clone(),
            auth: None,
        };
        Ok(Effect::Replace(fid_no, Arc::new(moved)))
    }
}
