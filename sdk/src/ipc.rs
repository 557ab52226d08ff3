//! The wire format between host and plugin, shared by both sides so they cannot drift apart.
//!
//! A schema crosses once, as an Arrow IPC schema message. Each batch then crosses as the IPC stream
//! messages for exactly one record batch: any dictionary batches it needs, then the record batch.
//! Buffers are aligned to 64 bytes within the message, so the receiver decodes them in place
//! (no copy) whenever the message itself sits at an aligned address.
//!
//! **Passthrough frames.** A plugin's output batch often repeats columns of the batch it was given
//! (a mask replaces one column and keeps the rest; a derive appends columns). Sending those back
//! would cost a copy in the plugin, a copy out of its memory and a full validation on the host,
//! for bytes the host already holds. So a payload may instead start with a passthrough header
//! that says, for each output column, either "carried here" or "the same as input column *i*",
//! followed by the IPC messages of a batch of the carried columns alone. The receiver takes the
//! repeated columns from the input batch it sent, which it already trusts, so a plugin can name
//! only data the host gave it: nothing it could not have returned by copying. Passthrough frames
//! are not used for schemas with dictionary columns (the IPC dictionary state is per stream).
//!
//! **Selection frames.** A row filter ([`Transform::select`](crate::Transform::select)) returns
//! only which rows to keep: a 64-byte header (magic, input rows, selected rows) and a bitmap. The
//! receiver filters the input batch it sent, natively.
//!
//! **Projected input frames.** A plugin that declares the input columns it reads gets only those
//! (and any column without a [`stand_in`]): a header (magic `WEIRPJ01`, column count, rows, one
//! u32 per column: 1 sent, 0 left out, padded to 64 bytes), then the IPC messages of a batch of
//! the sent columns. The receiver puts a stand-in of the declared type (nulls, or zeros if the
//! column is not nullable) in place of each column left out, so the transform still sees the
//! whole schema, and columns it passes through still go back as references to the host's real
//! columns. A plugin must therefore list every input column it reads or replaces; the host
//! refuses output that computes a column it left out.
//!
//! **Validation.** [`BatchDecoder::new`] validates everything it decodes, as Arrow's validating
//! reader does (offsets, UTF-8, null counts, nested children), so the host can decode what an
//! untrusted plugin returns. Top-level string columns are read as binary and their UTF-8 checked
//! in one pass over the values rather than per value; the rule is the same. Plugins decode the
//! host's batches with [`BatchDecoder::new_trusted`], which skips the content checks.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchOptions};
pub use arrow_buffer::{Buffer, MutableBuffer};
use arrow_ipc::MessageHeader;
use arrow_ipc::reader::{RecordBatchDecoder, StreamDecoder, read_dictionary_impl};
use arrow_ipc::writer::{StreamEncoder, StreamWriter};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};

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

/// The first bytes of a passthrough frame (an IPC message starts with `0xffffffff` instead).
const PASSTHROUGH_MAGIC: [u8; 8] = *b"WEIRPT01";
/// The first bytes of a selection frame: the input batch, filtered by the bitmap that follows.
const SELECTION_MAGIC: [u8; 8] = *b"WEIRSEL1";
/// Header length of a selection frame: magic, input rows, selected rows, padded to 64 bytes.
const SELECTION_HEADER_LEN: usize = 64;
/// The first bytes of a projected input frame: some columns left out.
const PROJECTED_MAGIC: [u8; 8] = *b"WEIRPJ01";
/// In a passthrough header: the column is carried in the frame, not repeated from the input.
const CARRIED: u32 = u32::MAX;
/// Distinct passthrough layouts a decoder keeps a sub-decoder for; a plugin that keeps changing
/// which columns it repeats only costs re-creating them.
const MAX_LAYOUTS: usize = 64;

/// Header length of a passthrough frame for `columns` output columns: magic, column count, row
/// count, one u32 per column, padded to 64 bytes so the IPC messages after it stay aligned.
fn passthrough_header_len(columns: usize) -> usize {
    (16 + 4 * columns).next_multiple_of(64)
}

fn has_dictionaries(schema: &Schema) -> bool {
    fn nested(data_type: &DataType) -> bool {
        match data_type {
            DataType::Dictionary(..) => true,
            DataType::List(f)
            | DataType::LargeList(f)
            | DataType::ListView(f)
            | DataType::LargeListView(f)
            | DataType::FixedSizeList(f, _)
            | DataType::Map(f, _) => nested(f.data_type()),
            DataType::Struct(fields) => fields.iter().any(|f| nested(f.data_type())),
            DataType::Union(fields, _) => fields.iter().any(|(_, f)| nested(f.data_type())),
            DataType::RunEndEncoded(a, b) => nested(a.data_type()) || nested(b.data_type()),
            _ => false,
        }
    }
    schema.fields().iter().any(|f| nested(f.data_type()))
}

/// The row count and the per-column words of a passthrough or projected frame's header (magic,
/// column count, row count, one u32 per column), checked to have a word for every column of
/// `schema` (`schema_name` in errors).
fn column_frame_header(
    payload: &[u8],
    schema: &Schema,
    schema_name: &str,
    error: impl Fn(String) -> ArrowError,
) -> Result<(usize, Vec<u32>), ArrowError> {
    let word = |at: usize| {
        payload
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| error("truncated header".into()))
    };
    let columns = word(8)? as usize;
    if columns != schema.fields().len() {
        return Err(error(format!(
            "{columns} columns, but the {schema_name} has {}",
            schema.fields().len()
        )));
    }
    let rows = word(12)? as usize;
    let layout = (0..columns)
        .map(|c| word(16 + 4 * c))
        .collect::<Result<Vec<u32>, _>>()?;
    Ok((rows, layout))
}

/// The schema of the carried columns of a passthrough layout.
fn carried_schema(schema: &Schema, layout: &[u32]) -> Schema {
    let fields: Vec<Arc<Field>> = schema
        .fields()
        .iter()
        .zip(layout)
        .filter(|(_, source)| **source == CARRIED)
        .map(|(field, _)| field.clone())
        .collect();
    Schema::new(fields)
}

/// Encodes the batches of one stream, one payload per batch.
///
/// The dictionary state carries across batches, as in an IPC stream.
pub struct BatchEncoder {
    encoder: StreamEncoder,
    /// Bytes of the schema message still to drop from the front of the next encoding: the
    /// schema crosses on its own, in `open`.
    schema_prefix: usize,
    schema: SchemaRef,
    /// Whether passthrough frames may be used (no dictionary columns).
    passthrough: bool,
    /// Encoders of the carried columns, by passthrough layout.
    carried: HashMap<Vec<u32>, BatchEncoder>,
}

impl BatchEncoder {
    /// A new encoder, and the schema message that starts its stream.
    pub fn new(schema: SchemaRef) -> Result<(Self, Vec<u8>), ArrowError> {
        let schema_message = encode_schema(&schema)?;
        let encoder = StreamEncoder::try_new(&schema)?;
        Ok((
            Self {
                encoder,
                schema_prefix: schema_message.len(),
                passthrough: !has_dictionaries(&schema),
                schema,
                carried: HashMap::new(),
            },
            schema_message,
        ))
    }

    /// Encodes "`input` filtered by `keep`" (a null in `keep` drops its row) without the data: a
    /// selection frame (see the module docs), or a passthrough frame repeating every column when
    /// every row is kept, or nothing when none is. The stream's schema must be `input`'s.
    pub fn encode_selection(
        &mut self,
        input: &RecordBatch,
        keep: &arrow_array::BooleanArray,
    ) -> Result<Option<Vec<u8>>, ArrowError> {
        if keep.len() != input.num_rows() {
            return Err(ArrowError::InvalidArgumentError(format!(
                "a selection of {} rows for a batch of {}",
                keep.len(),
                input.num_rows()
            )));
        }
        if input.schema().fields() != self.schema.fields() || !self.passthrough {
            // Not a pure filter of the stream's schema: send the filtered batch itself.
            let kept = arrow_select::filter::filter_record_batch(input, keep)?;
            return (kept.num_rows() > 0)
                .then(|| self.encode(&kept))
                .transpose();
        }
        let bits = match keep.nulls() {
            Some(nulls) if nulls.null_count() > 0 => keep.values() & nulls.inner(),
            _ => keep.values().clone(),
        };
        let selected = bits.count_set_bits();
        if selected == 0 {
            return Ok(None);
        }
        if selected == input.num_rows() {
            return self.encode_passthrough(input, input.columns()).map(Some);
        }
        let rows = u32::try_from(input.num_rows()).map_err(|_| {
            ArrowError::IpcError(format!("{} rows do not fit one frame", input.num_rows()))
        })?;
        let bitmap = bits.sliced();
        let mut frame = Vec::with_capacity(SELECTION_HEADER_LEN + bitmap.len());
        frame.extend_from_slice(&SELECTION_MAGIC);
        frame.extend_from_slice(&rows.to_le_bytes());
        frame.extend_from_slice(&(selected as u32).to_le_bytes());
        frame.resize(SELECTION_HEADER_LEN, 0);
        frame.extend_from_slice(&bitmap[..input.num_rows().div_ceil(8)]);
        Ok(Some(frame))
    }

    /// Encodes a batch computed from an input batch whose columns were `input`: columns that are
    /// the very same arrays as input columns are sent as references to them in a passthrough
    /// frame (see the module docs), the rest as IPC. Without such columns, or for schemas with
    /// dictionaries, this is [`encode`](Self::encode).
    pub fn encode_passthrough(
        &mut self,
        batch: &RecordBatch,
        input: &[ArrayRef],
    ) -> Result<Vec<u8>, ArrowError> {
        self.encode_passthrough_exact(batch, input, &[])
    }

    /// [`encode_passthrough`](Self::encode_passthrough), where an output column repeats input
    /// column `i` of `exact` only if it is that very `Arc` (stand-ins of a projected frame share
    /// their buffers across batches, so sharing buffers proves nothing for them).
    pub fn encode_passthrough_exact(
        &mut self,
        batch: &RecordBatch,
        input: &[ArrayRef],
        exact: &[usize],
    ) -> Result<Vec<u8>, ArrowError> {
        if !self.passthrough || input.is_empty() {
            return self.encode(batch);
        }
        let layout: Vec<u32> = batch
            .columns()
            .iter()
            .map(|column| {
                input
                    .iter()
                    .enumerate()
                    .position(|(i, candidate)| {
                        if exact.contains(&i) {
                            Arc::ptr_eq(column, candidate)
                        } else {
                            same_array(column, candidate)
                        }
                    })
                    .map_or(CARRIED, |i| i as u32)
            })
            .collect();
        if layout.iter().all(|source| *source == CARRIED) {
            return self.encode(batch);
        }
        if batch.schema().fields() != self.schema.fields() {
            return Err(ArrowError::SchemaError(format!(
                "batch schema {} does not match the declared schema {}",
                batch.schema(),
                self.schema
            )));
        }
        let header_len = passthrough_header_len(layout.len());
        let mut payload = Vec::with_capacity(header_len);
        payload.extend_from_slice(&PASSTHROUGH_MAGIC);
        payload.extend_from_slice(&(layout.len() as u32).to_le_bytes());
        let rows = u32::try_from(batch.num_rows()).map_err(|_| {
            ArrowError::IpcError(format!("{} rows do not fit one frame", batch.num_rows()))
        })?;
        payload.extend_from_slice(&rows.to_le_bytes());
        for source in &layout {
            payload.extend_from_slice(&source.to_le_bytes());
        }
        payload.resize(header_len, 0);

        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .zip(&layout)
            .filter(|(_, source)| **source == CARRIED)
            .map(|(column, _)| column.clone())
            .collect();
        if columns.is_empty() {
            return Ok(payload);
        }
        let encoder = match self.carried.entry(layout) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let schema = Arc::new(carried_schema(&self.schema, entry.key()));
                entry.insert(BatchEncoder::new(schema)?.0)
            }
        };
        let carried = RecordBatch::try_new(encoder.schema.clone(), columns)?;
        let pieces = encoder.encode_pieces(&carried)?;
        payload.reserve_exact(pieces.iter().map(|p| p.len()).sum());
        for piece in &pieces {
            payload.extend_from_slice(piece);
        }
        Ok(payload)
    }

    /// The schema every encoded batch must have.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Encodes one batch. The batch's fields must equal the stream's schema.
    pub fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
        Ok(concat(&self.encode_pieces(batch)?))
    }

    /// Encodes one batch without copying its arrays: the payload is the concatenation of the
    /// pieces, which share the batch's buffers (metadata and padding are small pieces of
    /// their own). The batch's fields must equal the stream's schema.
    pub fn encode_pieces(&mut self, batch: &RecordBatch) -> Result<Vec<Buffer>, ArrowError> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(ArrowError::SchemaError(format!(
                "batch schema {} does not match the declared schema {}",
                batch.schema(),
                self.schema
            )));
        }
        let mut pieces = self.encoder.encode(batch)?;
        if self.schema_prefix > 0 {
            // The first encoding starts with the schema message, already sent.
            let mut dropped = 0;
            let mut count = 0;
            while dropped < self.schema_prefix && count < pieces.len() {
                dropped += pieces[count].len();
                count += 1;
            }
            if dropped != self.schema_prefix {
                return Err(ArrowError::IpcError(
                    "the IPC encoder did not start its stream with the schema message".into(),
                ));
            }
            pieces.drain(..count);
            self.schema_prefix = 0;
        }
        Ok(pieces)
    }
}

/// What stands in for a column left out of a projected frame: all nulls if the field is nullable;
/// otherwise zeros (empty strings, `false`) for flat types; `None` for the other types, which are
/// never left out.
pub fn stand_in(field: &Field, rows: usize) -> Option<ArrayRef> {
    if field.is_nullable() {
        return Some(arrow_array::new_null_array(field.data_type(), rows));
    }
    let flat = field.data_type().is_primitive()
        || matches!(
            field.data_type(),
            DataType::Boolean
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView
                | DataType::FixedSizeBinary(_)
        );
    if !flat {
        return None;
    }
    // Zeroed buffers without a validity bitmap: zeros, `false`, empty strings and binaries.
    let zeros = arrow_data::ArrayData::new_null(field.data_type(), rows)
        .into_builder()
        .nulls(None)
        .build()
        .ok()?;
    Some(arrow_array::make_array(zeros))
}

/// The pieces of one payload, joined.
fn concat(pieces: &[Buffer]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(pieces.iter().map(|p| p.len()).sum());
    for piece in pieces {
        payload.extend_from_slice(piece);
    }
    payload
}

/// Whether `payload` is a selection frame (its batch is the input's rows, filtered natively).
pub fn is_selection(payload: &[u8]) -> bool {
    payload.starts_with(&SELECTION_MAGIC)
}

/// Encodes a plugin's input batches without the columns it does not read: projected input
/// frames (see the module docs).
pub struct ProjectingEncoder {
    schema: SchemaRef,
    /// The columns sent, in schema order.
    sent: Vec<usize>,
    inner: BatchEncoder,
}

impl ProjectingEncoder {
    /// An encoder for batches of `schema` sent to a plugin that reads only `reads`, or `None`
    /// when no column can be left out (see [`stand_in`]; never with dictionaries).
    pub fn new(schema: SchemaRef, reads: &[String]) -> Result<Option<Self>, ArrowError> {
        if has_dictionaries(&schema) {
            return Ok(None);
        }
        let sent: Vec<usize> = (0..schema.fields().len())
            .filter(|&i| {
                let field = schema.field(i);
                reads.iter().any(|r| r == field.name()) || stand_in(field, 0).is_none()
            })
            .collect();
        if sent.len() == schema.fields().len() {
            return Ok(None);
        }
        let (inner, _) = BatchEncoder::new(Arc::new(schema.project(&sent)?))?;
        Ok(Some(Self {
            schema,
            sent,
            inner,
        }))
    }

    /// Indices of the columns left out.
    pub fn omitted(&self) -> Vec<usize> {
        (0..self.schema.fields().len())
            .filter(|i| !self.sent.contains(i))
            .collect()
    }

    /// Encodes one batch of the schema as a projected frame, without copying its arrays (see
    /// [`BatchEncoder::encode_pieces`]).
    pub fn encode_pieces(&mut self, batch: &RecordBatch) -> Result<Vec<Buffer>, ArrowError> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(ArrowError::SchemaError(format!(
                "batch schema {} does not match the declared schema {}",
                batch.schema(),
                self.schema
            )));
        }
        let columns = self.schema.fields().len();
        let mut header = Vec::with_capacity(passthrough_header_len(columns));
        header.extend_from_slice(&PROJECTED_MAGIC);
        header.extend_from_slice(&(columns as u32).to_le_bytes());
        header.extend_from_slice(&(batch.num_rows() as u32).to_le_bytes());
        for i in 0..columns {
            header.extend_from_slice(&u32::from(self.sent.contains(&i)).to_le_bytes());
        }
        header.resize(passthrough_header_len(columns), 0);
        let mut pieces = vec![Buffer::from_vec(header)];
        pieces.extend(self.inner.encode_pieces(&batch.project(&self.sent)?)?);
        Ok(pieces)
    }

    /// [`encode_pieces`](Self::encode_pieces) into one payload.
    pub fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
        Ok(concat(&self.encode_pieces(batch)?))
    }

    /// Checks a plugin's answer (not a selection frame) to `input` (`None` for `finish`): an
    /// output column named like a column left out must be that input column, passed through;
    /// anything else was computed from its stand-in.
    pub fn check_answer(
        &self,
        answer: &RecordBatch,
        input: Option<&RecordBatch>,
    ) -> Result<(), ArrowError> {
        for i in self.omitted() {
            let name = self.schema.field(i).name();
            let Ok(k) = answer.schema().index_of(name) else {
                continue;
            };
            if !input.is_some_and(|input| same_array(answer.column(k), input.column(i))) {
                return Err(ArrowError::InvalidArgumentError(format!(
                    "column `{name}` came back computed, but the plugin does not read it (it is \
                     not among its input columns), so it was given only nulls in its place; a \
                     plugin must list every input column it reads or replaces"
                )));
            }
        }
        Ok(())
    }
}

/// Whether two arrays are the same data (the same buffers, offset and length), not only equal.
fn same_array(a: &ArrayRef, b: &ArrayRef) -> bool {
    Arc::ptr_eq(a, b)
        || (a.len() == b.len()
            && a.data_type() == b.data_type()
            && a.to_data().ptr_eq(&b.to_data()))
}

/// Decodes the payloads of one stream, each into exactly one batch of the stream's schema.
pub struct BatchDecoder {
    decoder: Decoder,
    schema: SchemaRef,
    /// Decoders of the carried columns of passthrough frames, by layout.
    carried: HashMap<Vec<u32>, BatchDecoder>,
    /// Decoders of the columns sent in projected input frames, by layout.
    projected: HashMap<Vec<u32>, BatchDecoder>,
    /// Stand-ins for columns left out, by column, built once for at least as many rows as any
    /// batch so far: each batch gets a slice of one, in its own `Arc`.
    stand_ins: HashMap<usize, arrow_data::ArrayData>,
    /// The columns of the last decoded input that are stand-ins.
    last_stand_ins: Vec<usize>,
}

enum Decoder {
    /// Arrow's stream decoder, validating everything. Top-level string columns are decoded as
    /// binary and their UTF-8 checked by [`binary_as_utf8`], which is several times faster than
    /// Arrow's per-value check on the ASCII text most columns hold; `utf8` lists them.
    Validating {
        decoder: StreamDecoder,
        utf8: Vec<usize>,
    },
    /// Reads the messages itself so that it can skip the validation of buffer contents (Arrow's
    /// `StreamDecoder` skips it for dictionaries only). Keeps the stream's dictionaries.
    Trusted(HashMap<i64, ArrayRef>),
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
        let utf8: Vec<usize> = (schema.fields().iter().enumerate())
            .filter(|(_, f)| matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8))
            .map(|(i, _)| i)
            .collect();
        if !utf8.is_empty() {
            // Same layout, read as binary: Arrow then checks the offsets but not the UTF-8.
            let fields = schema.fields().iter().map(|field| match field.data_type() {
                DataType::Utf8 => Arc::new(field.as_ref().clone().with_data_type(DataType::Binary)),
                DataType::LargeUtf8 => {
                    Arc::new(field.as_ref().clone().with_data_type(DataType::LargeBinary))
                }
                _ => field.clone(),
            });
            let wire =
                Schema::new_with_metadata(fields.collect::<Vec<_>>(), schema.metadata().clone());
            decoder = StreamDecoder::new();
            let mut buffer = Buffer::from(encode_schema(&wire)?);
            decoder.decode(&mut buffer)?;
        }
        Ok(Self {
            decoder: Decoder::Validating { decoder, utf8 },
            schema,
            carried: HashMap::new(),
            projected: HashMap::new(),
            stand_ins: HashMap::new(),
            last_stand_ins: Vec::new(),
        })
    }

    /// A decoder for the stream that `schema_message` starts, which checks the framing of each
    /// payload and its buffers' bounds, but neither their contents (offsets, UTF-8, null counts)
    /// nor that the batch's layout matches the schema:
    /// for payloads from a party that produced them from valid arrays or has validated them.
    /// Plugins decode their input with it, since the host validated (or built) every batch it
    /// sends; the host never uses it on what a plugin returns.
    ///
    /// # Safety
    /// Every payload given to [`decode`](Self::decode) must hold valid Arrow data for the schema
    /// (as any [`BatchEncoder`] of this schema produces). Invalid data makes later reads of the
    /// decoded arrays undefined behaviour.
    pub unsafe fn new_trusted(schema_message: &[u8]) -> Result<Self, ArrowError> {
        let schema = Arc::new(decode_schema(schema_message)?);
        Ok(Self {
            decoder: Decoder::Trusted(HashMap::new()),
            schema,
            carried: HashMap::new(),
            projected: HashMap::new(),
            stand_ins: HashMap::new(),
            last_stand_ins: Vec::new(),
        })
    }

    /// A decoder for a stream of `schema`.
    pub fn for_schema(schema: &Schema) -> Result<Self, ArrowError> {
        Self::new(&encode_schema(schema)?)
    }

    /// The stream's schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Decodes one input payload: a plain one, or a projected input frame (see the module docs),
    /// whose left-out columns get their stand-ins ([`stand_in`]).
    pub fn decode_input(&mut self, payload: Buffer) -> Result<RecordBatch, ArrowError> {
        self.last_stand_ins.clear();
        if !payload.starts_with(&PROJECTED_MAGIC) {
            return self.decode_buffer(payload);
        }
        let error = |message: String| ArrowError::IpcError(format!("projected frame: {message}"));
        let (rows, layout) = column_frame_header(&payload, &self.schema, "schema", error)?;
        let columns = layout.len();
        let mut sent = Vec::with_capacity(columns);
        for (i, (field, flag)) in self.schema.fields().iter().zip(&layout).enumerate() {
            match flag {
                1 => sent.push(i),
                0 if stand_in(field, 0).is_some() => {}
                _ => {
                    return Err(error(format!(
                        "column `{}` is marked {flag}, but it cannot be left out",
                        field.name()
                    )));
                }
            }
        }
        if !self.projected.contains_key(&layout) && self.projected.len() >= MAX_LAYOUTS {
            self.projected.clear();
        }
        let trusted = matches!(self.decoder, Decoder::Trusted(_));
        let decoder = match self.projected.entry(layout) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let message = encode_schema(&self.schema.project(&sent)?)?;
                let decoder = if trusted {
                    // SAFETY: the payloads come from the same party this decoder trusts.
                    unsafe { BatchDecoder::new_trusted(&message)? }
                } else {
                    BatchDecoder::new(&message)?
                };
                entry.insert(decoder)
            }
        };
        let header_len = passthrough_header_len(columns);
        if payload.len() < header_len {
            return Err(error("truncated header".into()));
        }
        let batch = decoder.decode_buffer(payload.slice(header_len))?;
        if batch.num_rows() != rows {
            return Err(error(format!(
                "sends columns of {} rows in a frame of {rows}",
                batch.num_rows()
            )));
        }
        let mut received = batch.columns().iter();
        self.last_stand_ins.clear();
        let mut columns = Vec::with_capacity(columns);
        for (i, field) in self.schema.fields().iter().enumerate() {
            if sent.binary_search(&i).is_ok() {
                let column = received
                    .next()
                    .ok_or_else(|| error("fewer columns than the header says".into()))?;
                columns.push(column.clone());
                continue;
            }
            let stand_in = match self.stand_ins.get(&i) {
                Some(stand_in) if stand_in.len() >= rows => stand_in,
                _ => {
                    let array = stand_in(field, rows.next_power_of_two())
                        .ok_or_else(|| error(format!("no stand-in for `{}`", field.name())))?;
                    self.stand_ins
                        .entry(i)
                        .insert_entry(array.to_data())
                        .into_mut()
                }
            };
            columns.push(arrow_array::make_array(stand_in.slice(0, rows)));
            self.last_stand_ins.push(i);
        }
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
    }

    /// The columns of the last input [`decode_input`](Self::decode_input) decoded that are
    /// stand-ins.
    pub fn stand_ins(&self) -> &[usize] {
        &self.last_stand_ins
    }

    /// Decodes one payload. It must hold exactly one record batch (after any dictionaries) and
    /// nothing else. Buffers are validated, and shared with `payload` where aligned.
    pub fn decode(&mut self, payload: Vec<u8>) -> Result<RecordBatch, ArrowError> {
        self.decode_buffer(Buffer::from_vec(payload))
    }

    /// [`decode`](Self::decode) for a payload already in a [`Buffer`]; the batch's arrays share
    /// its memory where aligned, so a clone of `payload` kept by the caller costs nothing.
    pub fn decode_buffer(&mut self, payload: Buffer) -> Result<RecordBatch, ArrowError> {
        let (decoder, utf8) = match &mut self.decoder {
            Decoder::Validating { decoder, utf8 } => (decoder, &*utf8),
            Decoder::Trusted(dictionaries) => {
                return decode_trusted(payload, &self.schema, dictionaries);
            }
        };
        let len = payload.len();
        let mut buffer = payload;
        let mut batch = decoder.decode(&mut buffer)?;
        if batch.is_none() && buffer.is_empty() {
            // Arrow's stream decoder completes a message whose body is empty (a batch of no
            // rows and no offsets) only when more bytes follow: show it the start of a next
            // message, which it leaves unread once the batch is out.
            let mut next = Buffer::from(&[0xff, 0xff, 0xff, 0xff][..]);
            batch = decoder.decode(&mut next)?;
        }
        let batch = batch.ok_or_else(|| {
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
        if utf8.is_empty() {
            if batch.schema().fields() != self.schema.fields() {
                return Err(ArrowError::SchemaError(format!(
                    "decoded batch schema {} differs from the stream's {}",
                    batch.schema(),
                    self.schema
                )));
            }
            return Ok(batch);
        }
        let rows = batch.num_rows();
        let mut columns = batch.columns().to_vec();
        for &i in utf8 {
            let name = self.schema.field(i).name();
            columns[i] = binary_as_utf8(&columns[i])
                .map_err(|e| ArrowError::InvalidArgumentError(format!("column `{name}`: {e}")))?;
        }
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
    }
}

impl BatchDecoder {
    /// [`decode_buffer`](Self::decode_buffer) for a payload answering `input`: it may be a
    /// passthrough frame (see the module docs) whose repeated columns are taken from `input`.
    /// Everything is checked: the header, that each repeated column has its output field's type
    /// and the frame's row count, and the carried columns as any payload.
    pub fn decode_answer(
        &mut self,
        payload: Buffer,
        input: Option<&RecordBatch>,
    ) -> Result<RecordBatch, ArrowError> {
        if payload.starts_with(&SELECTION_MAGIC) {
            return self.decode_selection(&payload, input);
        }
        if !payload.starts_with(&PASSTHROUGH_MAGIC) {
            return self.decode_buffer(payload);
        }
        let error = |message: String| ArrowError::IpcError(format!("passthrough frame: {message}"));
        let Some(input) = input else {
            return Err(error("sent where there is no input batch to repeat".into()));
        };
        if matches!(self.decoder, Decoder::Trusted(_)) || has_dictionaries(&self.schema) {
            return Err(error("not allowed in this stream".into()));
        }
        let (rows, layout) =
            column_frame_header(&payload, &self.schema, "declared output schema", error)?;
        let columns = layout.len();
        if rows != input.num_rows() {
            return Err(error(format!(
                "{rows} rows repeat columns of an input batch of {} rows",
                input.num_rows()
            )));
        }
        for (field, source) in self.schema.fields().iter().zip(&layout) {
            if *source == CARRIED {
                continue;
            }
            let Some(column) = input.columns().get(*source as usize) else {
                return Err(error(format!(
                    "column `{}` repeats input column {source}, but the input has {}",
                    field.name(),
                    input.num_columns()
                )));
            };
            if column.data_type() != field.data_type() {
                return Err(error(format!(
                    "column `{}` is declared {} but repeats input column {source} of type {}",
                    field.name(),
                    field.data_type(),
                    column.data_type()
                )));
            }
        }
        let header_len = passthrough_header_len(columns);
        if payload.len() < header_len {
            return Err(error("truncated header".into()));
        }
        let carried = if layout.contains(&CARRIED) {
            if !self.carried.contains_key(&layout) && self.carried.len() >= MAX_LAYOUTS {
                self.carried.clear();
            }
            let decoder = match self.carried.entry(layout.clone()) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    let schema = carried_schema(&self.schema, entry.key());
                    entry.insert(BatchDecoder::for_schema(&schema)?)
                }
            };
            let batch = decoder.decode_buffer(payload.slice(header_len))?;
            if batch.num_rows() != rows {
                return Err(error(format!(
                    "carries columns of {} rows in a frame of {rows}",
                    batch.num_rows()
                )));
            }
            batch.columns().to_vec()
        } else if payload.len() != header_len {
            return Err(error(format!(
                "{} bytes after a header that carries no column",
                payload.len() - header_len
            )));
        } else {
            Vec::new()
        };
        let mut carried = carried.into_iter();
        let columns = layout
            .iter()
            .map(|source| match *source {
                CARRIED => carried.next(),
                source => Some(input.column(source as usize).clone()),
            })
            .collect::<Option<Vec<ArrayRef>>>()
            .ok_or_else(|| error("fewer carried columns than the header says".into()))?;
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
    }
}

impl BatchDecoder {
    /// Decodes a selection frame: `input` filtered by the frame's bitmap, checked against the
    /// header's row counts and the declared schema.
    fn decode_selection(
        &self,
        payload: &Buffer,
        input: Option<&RecordBatch>,
    ) -> Result<RecordBatch, ArrowError> {
        let error = |message: String| ArrowError::IpcError(format!("selection frame: {message}"));
        let Some(input) = input else {
            return Err(error(
                "sent where there is no input batch to select from".into(),
            ));
        };
        if matches!(self.decoder, Decoder::Trusted(_)) || has_dictionaries(&self.schema) {
            return Err(error("not allowed in this stream".into()));
        }
        if payload.len() < SELECTION_HEADER_LEN {
            return Err(error("truncated header".into()));
        }
        let word = |at: usize| {
            u32::from_le_bytes([
                payload[at],
                payload[at + 1],
                payload[at + 2],
                payload[at + 3],
            ]) as usize
        };
        let (rows, selected) = (word(8), word(12));
        if rows != input.num_rows() {
            return Err(error(format!(
                "selects from {rows} rows, but the input batch has {}",
                input.num_rows()
            )));
        }
        if payload.len() != SELECTION_HEADER_LEN + rows.div_ceil(8) {
            return Err(error(format!(
                "a bitmap of {} bytes for {rows} rows",
                payload.len() - SELECTION_HEADER_LEN
            )));
        }
        if self.schema.fields().len() != input.num_columns() {
            return Err(error(format!(
                "the declared output schema has {} columns, the input {}",
                self.schema.fields().len(),
                input.num_columns()
            )));
        }
        for (field, column) in self.schema.fields().iter().zip(input.columns()) {
            if field.data_type() != column.data_type() {
                return Err(error(format!(
                    "column `{}` is declared {} but the input's is {}",
                    field.name(),
                    field.data_type(),
                    column.data_type()
                )));
            }
        }
        let bits = arrow_buffer::BooleanBuffer::new(payload.slice(SELECTION_HEADER_LEN), 0, rows);
        if bits.count_set_bits() != selected {
            return Err(error(format!(
                "says {selected} rows are selected, its bitmap {}",
                bits.count_set_bits()
            )));
        }
        let keep = arrow_array::BooleanArray::new(bits, None);
        let filter = arrow_select::filter::FilterBuilder::new(&keep)
            .optimize()
            .build();
        let columns = input
            .columns()
            .iter()
            .map(|column| filter.filter(column))
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(selected)),
        )
    }
}

/// A validated `Binary`/`LargeBinary` array as `Utf8`/`LargeUtf8`, once its values are checked
/// to be UTF-8 with every offset on a character boundary: the same rule as Arrow's, checked
/// over the whole values span at once (all-ASCII text needs nothing more).
fn binary_as_utf8(array: &ArrayRef) -> Result<ArrayRef, String> {
    fn check<O: arrow_array::OffsetSizeTrait>(array: &dyn Array) -> Result<(), String> {
        let array = array
            .as_any()
            .downcast_ref::<arrow_array::GenericBinaryArray<O>>()
            .ok_or("expected a binary layout")?;
        let offsets = array.value_offsets();
        let (first, last) = (offsets[0].as_usize(), offsets[offsets.len() - 1].as_usize());
        let span = &array.value_data()[first..last];
        if span.is_ascii() {
            return Ok(());
        }
        let text = std::str::from_utf8(span).map_err(|e| {
            let at = first + e.valid_up_to();
            let row = offsets
                .partition_point(|o| o.as_usize() <= at)
                .saturating_sub(1);
            format!("invalid UTF-8 in row {row}")
        })?;
        match (offsets.iter()).position(|o| !text.is_char_boundary(o.as_usize() - first)) {
            Some(row) => Err(format!(
                "a value boundary splits a UTF-8 character at row {row}"
            )),
            None => Ok(()),
        }
    }
    let utf8 = match array.data_type() {
        DataType::Binary => {
            check::<i32>(array.as_ref())?;
            DataType::Utf8
        }
        DataType::LargeBinary => {
            check::<i64>(array.as_ref())?;
            DataType::LargeUtf8
        }
        other => return Err(format!("expected a binary layout, found {other}")),
    };
    let data = array.to_data().into_builder().data_type(utf8);
    // SAFETY: Arrow validated the binary array (offsets in bounds and not decreasing, nulls),
    // and the values were just checked to be UTF-8 split only at character boundaries: all that
    // a string array adds to a binary one.
    Ok(arrow_array::make_array(unsafe { data.build_unchecked() }))
}

/// Decodes one payload (dictionary batches, then one record batch) without validating buffer
/// contents. The framing, the flatbuffer metadata and buffer bounds are still checked.
fn decode_trusted(
    payload: Buffer,
    schema: &SchemaRef,
    dictionaries: &mut HashMap<i64, ArrayRef>,
) -> Result<RecordBatch, ArrowError> {
    let error = |message: String| ArrowError::IpcError(message);
    // Arrow's `UnsafeFlag`, named through the method that takes it (its crate, arrow-data, is
    // not a dependency of ours).
    fn flag_of<'a, F: Default>(_: fn(RecordBatchDecoder<'a>, F) -> RecordBatchDecoder<'a>) -> F {
        F::default()
    }
    let mut skip_validation = flag_of(RecordBatchDecoder::with_skip_validation);
    // SAFETY: only reachable through `BatchDecoder::new_trusted`, whose caller promises valid
    // payloads.
    unsafe { skip_validation.set(true) };
    let mut offset = 0;
    while offset < payload.len() {
        let bytes = &payload[offset..];
        if bytes.len() < 8 || bytes[..4] != [0xff; 4] {
            return Err(error(format!(
                "expected an IPC message at byte {offset} of the payload"
            )));
        }
        let metadata_len = i32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let metadata_end = usize::try_from(metadata_len)
            .ok()
            .filter(|len| *len > 0)
            .map(|len| 8 + len)
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| error(format!("bad IPC message length at byte {offset}")))?;
        let message = arrow_ipc::root_as_message(&bytes[8..metadata_end])
            .map_err(|e| error(format!("unreadable IPC message at byte {offset}: {e}")))?;
        let body_len = usize::try_from(message.bodyLength())
            .ok()
            .filter(|len| metadata_end + len <= bytes.len())
            .ok_or_else(|| error(format!("IPC message body at byte {offset} is truncated")))?;
        let body = payload.slice_with_length(offset + metadata_end, body_len);
        offset += metadata_end + body_len;
        match message.header_type() {
            MessageHeader::DictionaryBatch => {
                let dictionary = message
                    .header_as_dictionary_batch()
                    .ok_or_else(|| error("unreadable dictionary batch".into()))?;
                read_dictionary_impl(
                    &body,
                    dictionary,
                    schema,
                    dictionaries,
                    &message.version(),
                    false,
                    skip_validation.clone(),
                )?;
            }
            MessageHeader::RecordBatch => {
                let header = message
                    .header_as_record_batch()
                    .ok_or_else(|| error("unreadable record batch".into()))?;
                if offset != payload.len() {
                    return Err(error(format!(
                        "payload holds {} bytes after its record batch; expected exactly one batch",
                        payload.len() - offset
                    )));
                }
                return RecordBatchDecoder::try_new(
                    &body,
                    header,
                    schema.clone(),
                    dictionaries,
                    &message.version(),
                )?
                .with_skip_validation(skip_validation)
                .read_record_batch();
            }
            other => {
                return Err(error(format!(
                    "unexpected IPC message {other:?} in a batch payload"
                )));
            }
        }
    }
    Err(error(format!(
        "payload of {} bytes holds no complete record batch",
        payload.len()
    )))
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
    fn string_columns_are_checked_for_utf8_and_named() {
        use arrow_array::{BinaryArray, LargeBinaryArray, LargeStringArray};
        // Encodes `bytes` as a binary column and decodes it as a string column named `s`.
        fn answer(bytes: ArrayRef, large: bool) -> Result<RecordBatch, ArrowError> {
            let text = if large {
                DataType::LargeUtf8
            } else {
                DataType::Utf8
            };
            let sent = RecordBatch::try_from_iter([("s", bytes)]).unwrap();
            let (mut encoder, _) = BatchEncoder::new(sent.schema()).unwrap();
            let payload = encoder.encode(&sent).unwrap();
            let schema = Schema::new(vec![Field::new("s", text, true)]);
            BatchDecoder::for_schema(&schema)?.decode(payload)
        }
        let good = ["héllo", "", "wörld", "ascii"];
        let batch = answer(Arc::new(BinaryArray::from_iter_values(good)), false).unwrap();
        assert_eq!(batch.column(0).as_ref(), &StringArray::from(good.to_vec()));
        let batch = answer(Arc::new(LargeBinaryArray::from_iter_values(good)), true).unwrap();
        assert_eq!(
            batch.column(0).as_ref(),
            &LargeStringArray::from(good.to_vec())
        );

        let bad = |values: Vec<&[u8]>| {
            let small = answer(Arc::new(BinaryArray::from(values.clone())), false).unwrap_err();
            let large = answer(Arc::new(LargeBinaryArray::from(values)), true).unwrap_err();
            assert_eq!(small.to_string(), large.to_string());
            small.to_string()
        };
        let error = bad(vec![b"ok", b"", b"caf\xc3", b"x"]);
        assert!(
            error.contains("column `s`: invalid UTF-8 in row 2"),
            "{error}"
        );
        // Each value is valid UTF-8 only together: the boundary splits "é".
        let error = bad(vec![b"a", b"\xc3", b"\xa9"]);
        assert!(
            error.contains("column `s`: a value boundary splits a UTF-8 character at row 2"),
            "{error}"
        );
    }

    #[test]
    fn projected_frames_send_only_what_is_read_and_stand_in_for_the_rest() {
        let input = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("name", DataType::Utf8, true),
                Field::new("city", DataType::Utf8, true),
                Field::new("flags", DataType::Struct(Default::default()), false),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
                Arc::new(StringArray::from(vec![Some("x"), None, Some("z")])),
                Arc::new(StringArray::from(vec!["a-long-city", "b", "c"])),
                Arc::new(arrow_array::StructArray::new_empty_fields(3, None)),
            ],
        )
        .unwrap();
        let schema = input.schema();
        // Reads `name` only: `id` and `city` are left out; `flags` has no stand-in.
        let mut encoder = ProjectingEncoder::new(schema.clone(), &["name".into()])
            .unwrap()
            .expect("id and city can be left out");
        assert_eq!(encoder.omitted(), vec![0, 2]);
        let (mut full, _) = BatchEncoder::new(schema.clone()).unwrap();
        let payload = encoder.encode(&input).unwrap();
        assert!(payload.len() < full.encode(&input).unwrap().len());
        let mut decoder = BatchDecoder::for_schema(&schema).unwrap();
        let decoded = decoder.decode_input(Buffer::from_vec(payload)).unwrap();
        assert_eq!(decoded.schema(), schema);
        let zeros: ArrayRef = Arc::new(Int64Array::from(vec![0, 0, 0]));
        assert_eq!(decoded.column(0), &zeros, "zeros for a non-nullable column");
        assert_eq!(decoded.column(1), input.column(1));
        assert_eq!(
            decoded.column(2).null_count(),
            3,
            "nulls for a nullable one"
        );
        assert_eq!(decoded.column(3), input.column(3));
        // Empty batches too; sending only `flags`, the IPC body is empty.
        let mut only_flags = ProjectingEncoder::new(schema.clone(), &[])
            .unwrap()
            .unwrap();
        let empty = only_flags.encode(&input.slice(0, 0)).unwrap();
        let mut fresh = BatchDecoder::for_schema(&schema).unwrap();
        let decoded = fresh.decode_input(Buffer::from_vec(empty)).unwrap();
        assert_eq!((decoded.num_rows(), decoded.num_columns()), (0, 4));
        // Plain payloads still decode.
        let plain = full.encode(&input).unwrap();
        assert_eq!(
            decoder.decode_input(Buffer::from_vec(plain)).unwrap(),
            input
        );

        // Nothing to leave out: no projection.
        let reads_all = ["id".into(), "name".into(), "city".into()];
        assert!(
            ProjectingEncoder::new(schema.clone(), &reads_all)
                .unwrap()
                .is_none()
        );

        // An answer may repeat a column left out, never compute one of that name.
        encoder.check_answer(&input, Some(&input)).unwrap();
        let computed = input.slice(0, 2);
        let error = encoder.check_answer(&computed, Some(&input)).unwrap_err();
        assert!(
            error.to_string().contains("column `id` came back computed"),
            "{error}"
        );
        assert!(
            encoder.check_answer(&input, None).is_err(),
            "finish has no input"
        );
        let without_city = input.project(&[0, 1]).unwrap();
        encoder.check_answer(&without_city, Some(&input)).unwrap();

        // A header may not leave out a column without a stand-in.
        let mut forged = encoder.encode(&input).unwrap();
        forged[28..32].copy_from_slice(&0u32.to_le_bytes());
        let error = decoder.decode_input(Buffer::from_vec(forged)).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`flags` is marked 0, but it cannot be left out"),
            "{error}"
        );
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
    fn pieces_concatenate_to_the_stream_writers_encoding() {
        let input = batch();
        let sliced = input.slice(1, 2);
        let mut writer = StreamWriter::try_new(Vec::new(), &input.schema()).unwrap();
        let schema_message = std::mem::take(writer.get_mut());
        let (mut encoder, message) = BatchEncoder::new(input.schema()).unwrap();
        assert_eq!(message, schema_message);
        for batch in [&input, &input, &sliced, &input] {
            writer.write(batch).unwrap();
            let expected = std::mem::take(writer.get_mut());
            let pieces = encoder.encode_pieces(batch).unwrap();
            let bytes: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
            assert_eq!(bytes, expected);
        }
    }

    #[test]
    fn trusted_decoder_reads_what_the_encoder_wrote() {
        let input = batch();
        let (mut encoder, schema_message) = BatchEncoder::new(input.schema()).unwrap();
        // SAFETY: every payload comes from `encoder`.
        let mut decoder = unsafe { BatchDecoder::new_trusted(&schema_message) }.unwrap();
        for _ in 0..3 {
            let payload = encoder.encode(&input).unwrap();
            assert_eq!(decoder.decode(payload).unwrap(), input);
        }
        let payload = encoder.encode(&input).unwrap();
        assert!(
            decoder
                .decode(payload[..payload.len() / 2].to_vec())
                .is_err()
        );
        let payload = encoder.encode(&input).unwrap();
        let twice = [payload.clone(), payload].concat();
        let err = decoder.decode(twice).unwrap_err().to_string();
        assert!(err.contains("after its record batch"), "{err}");
        // The framing is still checked.
        assert!(decoder.decode(vec![0xff; 64]).is_err());
        assert!(decoder.decode(vec![0; 7]).is_err());
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

    fn passthrough_round_trip(input: &RecordBatch, output: &RecordBatch) -> (usize, RecordBatch) {
        let (mut encoder, schema_message) = BatchEncoder::new(output.schema()).unwrap();
        let mut decoder = BatchDecoder::new(&schema_message).unwrap();
        let payload = encoder.encode_passthrough(output, input.columns()).unwrap();
        let len = payload.len();
        let decoded = decoder
            .decode_answer(Buffer::from_vec(payload), Some(input))
            .unwrap();
        (len, decoded)
    }

    fn plain_batch() -> RecordBatch {
        let mut columns = batch().columns().to_vec();
        columns.pop();
        RecordBatch::try_from_iter([("id", columns[0].clone()), ("name", columns[1].clone())])
            .unwrap()
    }

    #[test]
    fn passthrough_frames_repeat_input_columns_by_reference() {
        let input = plain_batch();
        let added: ArrayRef = Arc::new(Int64Array::from(vec![10, 20, 30]));
        // Reordered, one column repeated twice, one new.
        let output = RecordBatch::try_from_iter([
            ("name", input.column(1).clone()),
            ("new", added),
            ("id", input.column(0).clone()),
            ("id_again", input.column(0).clone()),
        ])
        .unwrap();
        let (len, decoded) = passthrough_round_trip(&input, &output);
        assert_eq!(decoded, output);
        // The repeated columns share the input's buffers.
        assert!(Arc::ptr_eq(decoded.column(0), input.column(1)));
        let (mut plain, _) = BatchEncoder::new(output.schema()).unwrap();
        assert!(len < plain.encode(&output).unwrap().len());

        // Everything repeated: a header alone. A slice is not the same array: it is carried.
        let sliced = input.slice(1, 2);
        for output in [input.clone(), sliced.clone()] {
            let (_, decoded) = passthrough_round_trip(&input, &output);
            assert_eq!(decoded, output);
        }
        let (len, _) = passthrough_round_trip(&input, &input);
        assert_eq!(len, 64);
    }

    #[test]
    fn passthrough_frames_are_checked() {
        let input = plain_batch();
        let schema = input.schema();
        let (mut encoder, schema_message) = BatchEncoder::new(schema.clone()).unwrap();
        let frame = encoder.encode_passthrough(&input, input.columns()).unwrap();
        let decode = |frame: Vec<u8>, input: Option<&RecordBatch>| {
            let mut decoder = BatchDecoder::new(&schema_message).unwrap();
            decoder
                .decode_answer(Buffer::from_vec(frame), input)
                .unwrap_err()
                .to_string()
        };
        let err = decode(frame.clone(), None);
        assert!(err.contains("no input batch"), "{err}");
        let shorter = input.slice(0, 2);
        let err = decode(frame.clone(), Some(&shorter));
        assert!(
            err.contains("3 rows repeat columns of an input batch of 2 rows"),
            "{err}"
        );
        // Input column 1 (a string) where an Int64 is declared.
        let mut wrong_type = frame.clone();
        wrong_type[16..20].copy_from_slice(&1u32.to_le_bytes());
        let err = decode(wrong_type, Some(&input));
        assert!(err.contains("column `id` is declared Int64"), "{err}");
        let mut out_of_range = frame.clone();
        out_of_range[16..20].copy_from_slice(&7u32.to_le_bytes());
        let err = decode(out_of_range, Some(&input));
        assert!(
            err.contains("repeats input column 7, but the input has 2"),
            "{err}"
        );
        let err = decode(frame[..20].to_vec(), Some(&input));
        assert!(err.contains("truncated header"), "{err}");
        let mut trailing = frame.clone();
        trailing.extend_from_slice(&[0; 8]);
        let err = decode(trailing, Some(&input));
        assert!(
            err.contains("after a header that carries no column"),
            "{err}"
        );
        let mut columns = frame.clone();
        columns[8..12].copy_from_slice(&3u32.to_le_bytes());
        let err = decode(columns, Some(&input));
        assert!(
            err.contains("3 columns, but the declared output schema has 2"),
            "{err}"
        );
        // A trusted (plugin-side) decoder never takes one.
        // SAFETY: nothing is decoded.
        let mut trusted = unsafe { BatchDecoder::new_trusted(&schema_message) }.unwrap();
        assert!(
            trusted
                .decode_answer(Buffer::from_vec(frame), Some(&input))
                .is_err()
        );
    }

    #[test]
    fn selection_frames_carry_only_the_bitmap() {
        let input = RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int64Array::from_iter_values(0..100)) as ArrayRef,
            ),
            (
                "name",
                Arc::new(StringArray::from_iter_values(
                    (0..100).map(|i| format!("n{i}")),
                )) as ArrayRef,
            ),
        ])
        .unwrap();
        let (mut encoder, schema_message) = BatchEncoder::new(input.schema()).unwrap();
        let mut decoder = BatchDecoder::new(&schema_message).unwrap();
        // Every third row, and a null (dropped) at row 3.
        let keep: arrow_array::BooleanArray = (0..100)
            .map(|i| if i == 3 { None } else { Some(i % 3 == 0) })
            .collect();
        let frame = encoder.encode_selection(&input, &keep).unwrap().unwrap();
        assert!(frame.starts_with(&SELECTION_MAGIC));
        assert_eq!(frame.len(), 64 + 13);
        let decoded = decoder
            .decode_answer(Buffer::from_vec(frame), Some(&input))
            .unwrap();
        let expected = arrow_select::filter::filter_record_batch(&input, &keep).unwrap();
        assert_eq!(decoded, expected);
        assert_eq!(decoded.num_rows(), 33);

        // All rows: the columns are repeated as they are; none: nothing at all.
        let all = arrow_array::BooleanArray::from(vec![true; 100]);
        let frame = encoder.encode_selection(&input, &all).unwrap().unwrap();
        assert!(frame.starts_with(&PASSTHROUGH_MAGIC));
        let decoded = decoder
            .decode_answer(Buffer::from_vec(frame), Some(&input))
            .unwrap();
        assert!(Arc::ptr_eq(decoded.column(1), input.column(1)));
        let none = arrow_array::BooleanArray::from(vec![false; 100]);
        assert!(encoder.encode_selection(&input, &none).unwrap().is_none());
        let short = arrow_array::BooleanArray::from(vec![true; 99]);
        assert!(encoder.encode_selection(&input, &short).is_err());
    }

    #[test]
    fn selection_frames_are_checked() {
        let input = plain_batch();
        let (mut encoder, schema_message) = BatchEncoder::new(input.schema()).unwrap();
        let keep = arrow_array::BooleanArray::from(vec![true, false, true]);
        let frame = encoder.encode_selection(&input, &keep).unwrap().unwrap();
        let decode = |frame: Vec<u8>, input: Option<&RecordBatch>| {
            let mut decoder = BatchDecoder::new(&schema_message).unwrap();
            decoder
                .decode_answer(Buffer::from_vec(frame), input)
                .unwrap_err()
                .to_string()
        };
        let err = decode(frame.clone(), None);
        assert!(err.contains("no input batch to select from"), "{err}");
        let err = decode(frame.clone(), Some(&input.slice(0, 2)));
        assert!(
            err.contains("selects from 3 rows, but the input batch has 2"),
            "{err}"
        );
        let mut count = frame.clone();
        count[12..16].copy_from_slice(&3u32.to_le_bytes());
        let err = decode(count, Some(&input));
        assert!(
            err.contains("says 3 rows are selected, its bitmap 2"),
            "{err}"
        );
        let mut long = frame.clone();
        long.push(0);
        let err = decode(long, Some(&input));
        assert!(err.contains("a bitmap of 2 bytes for 3 rows"), "{err}");
        let err = decode(frame[..40].to_vec(), Some(&input));
        assert!(err.contains("truncated header"), "{err}");
        let swapped = RecordBatch::try_from_iter([
            ("id", input.column(1).clone()),
            ("name", input.column(0).clone()),
        ])
        .unwrap();
        let err = decode(frame, Some(&swapped));
        assert!(
            err.contains("column `id` is declared Int64 but the input's is Utf8"),
            "{err}"
        );
    }

    #[test]
    fn dictionary_schemas_never_use_passthrough_frames() {
        let input = batch();
        let (mut encoder, schema_message) = BatchEncoder::new(input.schema()).unwrap();
        let payload = encoder.encode_passthrough(&input, input.columns()).unwrap();
        assert!(!payload.starts_with(&PASSTHROUGH_MAGIC));
        let mut decoder = BatchDecoder::new(&schema_message).unwrap();
        let decoded = decoder
            .decode_answer(Buffer::from_vec(payload), Some(&input))
            .unwrap();
        assert_eq!(decoded, input);
    }

    #[test]
    fn schema_round_trip() {
        let schema = batch().schema();
        let bytes = encode_schema(&schema).unwrap();
        assert_eq!(decode_schema(&bytes).unwrap(), *schema);
        assert!(decode_schema(&bytes[..bytes.len() / 2]).is_err());
    }
}
