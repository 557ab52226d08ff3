//! The wire format between host and plugin, shared by both sides so they cannot drift apart.
//!
//! A schema crosses once, as an Arrow IPC schema message. Each batch then crosses as the IPC stream
//! messages for exactly one record batch: any dictionary batches it needs, then the record batch.
//! Buffers are aligned to 64 bytes within the message, so the receiver decodes them in place
//! (no copy) whenever the message itself sits at an aligned address.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{ArrowError, Schema, SchemaRef};

/// Encodes a schema as a stream-framed IPC schema message.
pub fn encode_schema(schema: &Schema) -> Result<Vec<u8>, ArrowError> {
    let mut writer = StreamWriter::try_new(Vec::new(), schema)?;
    Ok(std::mem::take(writer.get_mut()))
}

/// The IPC end-of-stream marker. The stream decoder only completes a message once it sees bytes
/// after it, so a lone schema message is decoded with this marker appended.
const END_OF_STREAM: [u8; 8] = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];

/// Decodes a stream-framed IPC schema message.
pub fn decode_schema(bytes: &[u8]) -> Result<Schema, ArrowError> {
    let mut decoder = StreamDecoder::new();
    let mut buffer = Buffer::from([bytes, &END_OF_STREAM].concat());
    if decoder.decode(&mut buffer)?.is_some() || !buffer.is_empty() {
        return Err(ArrowError::IpcError(
            "expected a schema message alone, found record batches after it".into(),
        ));
    }
    decoder.finish()?;
    decoder
        .schema()
        .map(|schema| schema.as_ref().clone())
        .ok_or_else(|| ArrowError::IpcError("incomplete IPC schema message".into()))
}

/// Encodes the batches of one stream, one payload per batch.
///
/// The dictionary state carries across batches, as in an IPC stream.
pub struct BatchEncoder {
    writer: StreamWriter<Vec<u8>>,
    schema: SchemaRef,
}

impl BatchEncoder {
    /// A new encoder, and the schema message that starts its stream.
    pub fn new(schema: SchemaRef) -> Result<(Self, Vec<u8>), ArrowError> {
        let mut writer = StreamWriter::try_new(Vec::new(), &schema)?;
        let schema_message = std::mem::take(writer.get_mut());
        Ok((Self { writer, schema }, schema_message))
    }

    /// The schema every encoded batch must have.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Encodes one batch. The batch's fields must equal the stream's schema.
    pub fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(ArrowError::SchemaError(format!(
                "batch schema {} does not match the declared schema {}",
                batch.schema(),
                self.schema
            )));
        }
        let sink = self.writer.get_mut();
        debug_assert!(sink.is_empty());
        sink.reserve(batch.get_array_memory_size() + 1024);
        self.writer.write(batch)?;
        Ok(std::mem::take(self.writer.get_mut()))
    }
}

/// Decodes the payloads of one stream, each into exactly one batch of the stream's schema.
pub struct BatchDecoder {
    decoder: StreamDecoder,
    schema: SchemaRef,
}

impl BatchDecoder {
    /// A decoder for the stream that `schema_message` starts.
    pub fn new(schema_message: &[u8]) -> Result<Self, ArrowError> {
        let schema = Arc::new(decode_schema(schema_message)?);
        // The decoder completes the schema message when the first payload arrives.
        let mut decoder = StreamDecoder::new();
        let mut buffer = Buffer::from(schema_message);
        if decoder.decode(&mut buffer)?.is_some() || !buffer.is_empty() {
            return Err(ArrowError::IpcError(
                "expected a schema message alone, found more after it".into(),
            ));
        }
        Ok(Self { decoder, schema })
    }

    /// A decoder for a stream of `schema`.
    pub fn for_schema(schema: &Schema) -> Result<Self, ArrowError> {
        Self::new(&encode_schema(schema)?)
    }

    /// The stream's schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Decodes one payload. It must hold exactly one record batch (after any dictionaries) and
    /// nothing else. Buffers are validated, and shared with `payload` where aligned.
    pub fn decode(&mut self, payload: Vec<u8>) -> Result<RecordBatch, ArrowError> {
        let len = payload.len();
        let mut buffer = Buffer::from_vec(payload);
        let batch = self.decoder.decode(&mut buffer)?.ok_or_else(|| {
            ArrowError::IpcError(format!(
                "payload of {len} bytes holds no complete record batch"
            ))
        })?;
        if !buffer.is_empty() {
            return Err(ArrowError::IpcError(format!(
                "payload holds {} bytes after its record batch; expected exactly one batch",
                buffer.len()
            )));
        }
        if batch.schema().fields() != self.schema.fields() {
            return Err(ArrowError::SchemaError(format!(
                "decoded batch schema {} differs from the stream's {}",
                batch.schema(),
                self.schema
            )));
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, DictionaryArray, Int64Array, StringArray, types::Int32Type};
    use arrow_schema::{DataType, Field};

    fn batch() -> RecordBatch {
        let dict: DictionaryArray<Int32Type> = vec!["a", "b", "a"].into_iter().collect();
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            (
                "name",
                Arc::new(StringArray::from(vec![Some("x"), None, Some("z")])) as ArrayRef,
            ),
            ("tag", Arc::new(dict) as ArrayRef),
        ])
        .unwrap()
    }

    #[test]
    fn batches_round_trip_with_dictionaries() {
        let input = batch();
        let (mut encoder, schema_message) = BatchEncoder::new(input.schema()).unwrap();
        let mut decoder = BatchDecoder::new(&schema_message).unwrap();
        for _ in 0..3 {
            let payload = encoder.encode(&input).unwrap();
            assert_eq!(decoder.decode(payload).unwrap(), input);
        }
    }

    #[test]
    fn encoder_refuses_a_batch_of_another_schema() {
        let (mut encoder, _) = BatchEncoder::new(batch().schema()).unwrap();
        let other = RecordBatch::try_from_iter([(
            "id",
            Arc::new(StringArray::from(vec!["1"])) as ArrayRef,
        )])
        .unwrap();
        let err = encoder.encode(&other).unwrap_err().to_string();
        assert!(err.contains("does not match the declared schema"), "{err}");
    }

    #[test]
    fn decoder_rejects_garbage_truncation_and_trailing_bytes() {
        let input = batch();
        let (mut encoder, schema_message) = BatchEncoder::new(input.schema()).unwrap();
        let mut decoder = BatchDecoder::new(&schema_message).unwrap();
        assert!(decoder.decode(vec![0xff; 64]).is_err());

        let mut decoder = BatchDecoder::new(&schema_message).unwrap();
        let payload = encoder.encode(&input).unwrap();
        let truncated = payload[..payload.len() / 2].to_vec();
        assert!(decoder.decode(truncated).is_err());

        let (mut encoder, schema_message) = BatchEncoder::new(input.schema()).unwrap();
        let mut decoder = BatchDecoder::new(&schema_message).unwrap();
        let payload = encoder.encode(&input).unwrap();
        let twice = [payload.clone(), payload].concat();
        let err = decoder.decode(twice).unwrap_err().to_string();
        assert!(err.contains("after its record batch"), "{err}");
    }

    #[test]
    fn decoder_rejects_a_batch_of_another_layout() {
        let narrow = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        let mut decoder = BatchDecoder::for_schema(&narrow).unwrap();
        let input = batch();
        let (mut encoder, _) = BatchEncoder::new(input.schema()).unwrap();
        assert!(decoder.decode(encoder.encode(&input).unwrap()).is_err());
    }

    #[test]
    fn schema_round_trip() {
        let schema = batch().schema();
        let bytes = encode_schema(&schema).unwrap();
        assert_eq!(decode_schema(&bytes).unwrap(), *schema);
        assert!(decode_schema(&bytes[..bytes.len() / 2]).is_err());
    }
}
