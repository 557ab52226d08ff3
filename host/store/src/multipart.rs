//! Multipart uploads that are all-or-nothing.
//!
//! A [`MultipartWriter`] streams an object in parts. The object becomes visible only when
//! [`MultipartWriter::finish`] succeeds. On every other path — [`MultipartWriter::abort`], a
//! part that fails to upload, a failed completion, or the writer being dropped unfinished (a
//! task cancelled or an error returned with `?`) — the upload is aborted so no parts linger
//! (on S3 uncompleted parts are billed until aborted; on `file://` they are a staging file).

use bytes::Bytes;
use object_store::{PutResult, WriteMultipart};

use crate::{Error, Result};

/// A multipart upload in progress; see [`crate::Store::put_multipart`].
#[derive(Debug)]
pub struct MultipartWriter {
    url: String,
    /// `None` once finished or aborted.
    upload: Option<WriteMultipart>,
    max_concurrency: usize,
    bytes_written: u64,
}

impl MultipartWriter {
    pub(crate) fn new(url: String, upload: WriteMultipart, max_concurrency: usize) -> Self {
        debug_assert!(max_concurrency > 0);
        Self {
            url,
            upload: Some(upload),
            max_concurrency,
            bytes_written: 0,
        }
    }

    /// The URL of the object being written.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Bytes handed to [`MultipartWriter::write`] so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Appends `data`. Full parts upload in the background, at most the store's multipart
    /// concurrency at once; this waits when that many are in flight. If an upload has failed,
    /// the whole upload is aborted and the error returned; the writer is then unusable.
    pub async fn write(&mut self, data: impl Into<Bytes>) -> Result<()> {
        let Some(upload) = self.upload.as_mut() else {
            return Err(self.closed());
        };
        if let Err(e) = upload.wait_for_capacity(self.max_concurrency).await {
            self.abort_in_place().await;
            return Err(Error::from_object_store(self.url.clone(), e));
        }
        let data = data.into();
        self.bytes_written += data.len() as u64;
        if let Some(upload) = self.upload.as_mut() {
            upload.put(data);
        }
        Ok(())
    }

    /// Uploads the last part and completes the upload; the object then appears whole. On
    /// failure the upload is aborted.
    pub async fn finish(mut self) -> Result<PutResult> {
        let Some(upload) = self.upload.take() else {
            return Err(self.closed());
        };
        // `WriteMultipart::finish` aborts the upload itself if a part or completion fails.
        upload
            .finish()
            .await
            .map_err(|e| Error::from_object_store(self.url.clone(), e))
    }

    /// Abandons the upload and deletes the parts uploaded so far.
    pub async fn abort(mut self) -> Result<()> {
        let Some(upload) = self.upload.take() else {
            return Ok(());
        };
        upload
            .abort()
            .await
            .map_err(|e| Error::from_object_store(self.url.clone(), e))
    }

    async fn abort_in_place(&mut self) {
        if let Some(upload) = self.upload.take()
            && let Err(e) = upload.abort().await
        {
            tracing::warn!(url = %self.url, error = %e, "could not abort failed multipart upload");
        }
    }

    fn closed(&self) -> Error {
        Error::Other {
            url: self.url.clone(),
            source: object_store::Error::Generic {
                store: "weir",
                source: "multipart upload was already aborted after an earlier error".into(),
            },
        }
    }
}

impl Drop for MultipartWriter {
    fn drop(&mut self) {
        let Some(upload) = self.upload.take() else {
            return;
        };
        let url = std::mem::take(&mut self.url);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                tracing::debug!(%url, "multipart writer dropped unfinished; aborting the upload");
                runtime.spawn(async move {
                    if let Err(e) = upload.abort().await {
                        tracing::warn!(%url, error = %e, "could not abort abandoned multipart upload");
                    }
                });
            }
            Err(_) => {
                tracing::warn!(%url, "multipart writer dropped outside a runtime; upload left to the bucket's lifecycle rule");
            }
        }
    }
}
