//! Staged objects: an object written in pieces as they become known, under a key of its own,
//! then published under another key by a create-only copy ([`crate::Store::copy_create`]).
//!
//! Guarantees:
//! - Nothing is visible at the staged key's final content until [`StagingWriter::finish`]
//!   returns; a staged key is meant to be private to one writer (a unique name), and readers of
//!   a table never look at it.
//! - On `file://` the object is the file at the key itself, appended to in place: each
//!   [`StagingWriter::append`] writes and (unless `WEIR_FILE_FSYNC=false`) fsyncs its bytes, so
//!   [`StagingWriter::finish`] has nothing left to make durable, and the publishing
//!   copy is a hard link (its directory fsynced). The cost of publishing does not grow with
//!   the object.
//! - Elsewhere it is a multipart upload (memory: parts as they come; S3: buffered to the store's
//!   part size, at least 5 MiB, as S3 requires of all parts but the last).
//! - [`StagingWriter::abort`], a failed append, or dropping the writer unfinished removes what
//!   was written.

use std::path::PathBuf;

use bytes::Bytes;

use crate::{Error, MultipartWriter, Result};

/// An object being staged; see [`crate::Store::stage`].
#[derive(Debug)]
pub struct StagingWriter {
    url: String,
    inner: Inner,
    bytes_written: u64,
}

#[derive(Debug)]
enum Inner {
    /// `file://`: the file at the key, appended to in place. `None` while an append runs on a
    /// blocking thread, and after it failed.
    Local {
        file: Option<std::fs::File>,
        path: PathBuf,
        fsync: bool,
    },
    Multipart(MultipartWriter),
    /// Finished or aborted.
    Closed,
}

impl StagingWriter {
    pub(crate) fn local(url: String, file: std::fs::File, path: PathBuf, fsync: bool) -> Self {
        Self {
            url,
            inner: Inner::Local {
                file: Some(file),
                path,
                fsync,
            },
            bytes_written: 0,
        }
    }

    pub(crate) fn multipart(writer: MultipartWriter) -> Self {
        Self {
            url: writer.url().to_string(),
            inner: Inner::Multipart(writer),
            bytes_written: 0,
        }
    }

    /// The URL of the staged object.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Bytes appended so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Appends `data` (on `file://`, written and fsynced before this returns). On failure the
    /// staged object is removed and the writer is unusable.
    pub async fn append(&mut self, data: Bytes) -> Result<()> {
        let len = data.len() as u64;
        match &mut self.inner {
            Inner::Local { file, fsync, .. } => {
                let Some(mut handle) = file.take() else {
                    return Err(self.closed());
                };
                let fsync = *fsync;
                let written = tokio::task::spawn_blocking(move || {
                    use std::io::Write;
                    let result = handle
                        .write_all(&data)
                        .and_then(|()| if fsync { handle.sync_data() } else { Ok(()) });
                    (handle, result)
                })
                .await;
                match written {
                    Ok((handle, Ok(()))) => *file = Some(handle),
                    Ok((_, Err(source))) => {
                        self.remove_local().await;
                        return Err(self.io(source));
                    }
                    Err(e) => {
                        self.remove_local().await;
                        return Err(self.io(std::io::Error::other(e.to_string())));
                    }
                }
            }
            Inner::Multipart(writer) => writer.write(data).await?,
            Inner::Closed => return Err(self.closed()),
        }
        self.bytes_written += len;
        Ok(())
    }

    /// Makes the staged object whole and durable under its key.
    pub async fn finish(mut self) -> Result<()> {
        match std::mem::replace(&mut self.inner, Inner::Closed) {
            Inner::Local { file, .. } => {
                // Every append was written and (with fsync on) synced, its new length
                // included: nothing is left to make durable.
                match file {
                    Some(_) => Ok(()),
                    None => Err(self.closed()),
                }
            }
            Inner::Multipart(writer) => writer.finish().await.map(|_| ()),
            Inner::Closed => Err(self.closed()),
        }
    }

    /// Abandons the object and removes what was written.
    pub async fn abort(mut self) -> Result<()> {
        match std::mem::replace(&mut self.inner, Inner::Closed) {
            Inner::Local { path, .. } => match tokio::fs::remove_file(&path).await {
                Ok(()) => {
                    remove_empty_parent(&path);
                    Ok(())
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(self.io(source)),
            },
            Inner::Multipart(writer) => writer.abort().await,
            Inner::Closed => Ok(()),
        }
    }

    async fn remove_local(&mut self) {
        if let Inner::Local { path, .. } = std::mem::replace(&mut self.inner, Inner::Closed)
            && let Err(e) = tokio::fs::remove_file(&path).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a failed staged object");
        }
    }

    fn io(&self, source: std::io::Error) -> Error {
        Error::StagingIo {
            url: self.url.clone(),
            source,
        }
    }

    fn closed(&self) -> Error {
        Error::Other {
            url: self.url.clone(),
            source: object_store::Error::Generic {
                store: "weir",
                source: "staged object was already finished or abandoned after an error".into(),
            },
        }
    }
}

impl Drop for StagingWriter {
    fn drop(&mut self) {
        // Multipart writers abort themselves when dropped.
        if let Inner::Local { path, .. } = &self.inner {
            tracing::debug!(url = %self.url, "staged object dropped unfinished; removing it");
            if std::fs::remove_file(path).is_ok() {
                remove_empty_parent(path);
            }
        }
    }
}

/// Removes the directory of a removed staged file if it is now empty (as `file://` deletes do).
fn remove_empty_parent(path: &std::path::Path) {
    if let Some(dir) = path.parent() {
        // Fails, harmlessly, if the directory still holds something.
        let _ = std::fs::remove_dir(dir);
    }
}
