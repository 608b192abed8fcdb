import { describe, expect, it } from 'vitest';
import { csvCell, parseCsv, previewImport } from './csv';

describe('parseCsv', () => {
  it('reads plain records with LF or CRLF line ends', () => {
    expect(parseCsv('a,b\n1,2\n')).toEqual([
      ['a', 'b'],
      ['1', '2'],
    ]);
    expect(parseCsv('a,b\r\n1,2')).toEqual([
      ['a', 'b'],
      ['1', '2'],
    ]);
  });

  it('reads quoted fields with commas, doubled quotes and line breaks', () => {
    expect(parseCsv('label,tags\n"Truck, north","say ""hi""\nthere"\n')).toEqual([
      ['label', 'tags'],
      ['Truck, north', 'say "hi"\nthere'],
    ]);
  });

  it('keeps empty fields and ignores a byte-order mark', () => {
    expect(parseCsv('\ufefficcid,,label\n1,,\n')).toEqual([
      ['iccid', '', 'label'],
      ['1', '', ''],
    ]);
  });

  it('reads nothing from an empty text', () => {
    expect(parseCsv('')).toEqual([]);
  });

  it('writes back what it reads', () => {
    const values = ['plain', 'a,b', 'say "hi"', 'two\nlines'];
    expect(parseCsv(values.map(csvCell).join(','))).toEqual([values]);
  });
});

describe('previewImport', () => {
  it('counts data rows without blank lines and samples the first', () => {
    const preview = previewImport('ICCID,imsi,label\n8988228066602306711,901405100000001,a\n\n8988228066602306729,901405100000002,b\n', 1);
    expect(preview.columns).toEqual(['ICCID', 'imsi', 'label']);
    expect(preview.rows).toBe(2);
    expect(preview.sample).toEqual([['8988228066602306711', '901405100000001', 'a']]);
    expect(preview.headerProblems).toEqual([]);
  });

  it('names unknown and missing columns as the API would refuse them', () => {
    expect(previewImport('iccid,phone\n1,2\n').headerProblems).toEqual(['unknown column "phone"', 'the column "imsi" is missing']);
    expect(previewImport('').headerProblems).toEqual(['the column "iccid" is missing', 'the column "imsi" is missing']);
  });
});
