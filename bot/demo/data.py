"""The demo's sample chain: 2 regions, 6 stores, their people, 200 SKUs and stock, written as import CSVs."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

SEED = 20261124

# code -> (name, region, latitude, longitude)
STORES = {
    "S001": ("上海徐汇店", "华东区", 31.1880, 121.4365),
    "S002": ("上海静安店", "华东区", 31.2290, 121.4480),
    "S003": ("杭州西湖店", "华东区", 30.2590, 120.1540),
    "S004": ("广州天河店", "华南区", 23.1291, 113.3270),
    "S005": ("深圳福田店", "华南区", 22.5431, 114.0579),
    "S006": ("深圳南山店", "华南区", 22.5333, 113.9305),
}

# userid -> (name, role, store, region)
STAFF = {
    "zhangwei": ("张伟", "manager", "S001", ""),
    "lina": ("李娜", "staff", "S001", ""),
    "liuyang": ("刘洋", "staff", "S001", ""),
    "chenjing": ("陈静", "staff", "S001", ""),
    "wangfang": ("王芳", "manager", "S002", ""),
    "yangmin": ("杨敏", "staff", "S002", ""),
    "zhaolei": ("赵磊", "staff", "S002", ""),
    "huangli": ("黄丽", "manager", "S003", ""),
    "zhouqiang": ("周强", "staff", "S003", ""),
    "wuxia": ("吴霞", "staff", "S003", ""),
    "xujie": ("徐杰", "staff", "S003", ""),
    "sunli": ("孙丽", "manager", "S004", ""),
    "mahui": ("马辉", "staff", "S004", ""),
    "zhuting": ("朱婷", "staff", "S004", ""),
    "hujun": ("胡军", "manager", "S005", ""),
    "guoyan": ("郭燕", "staff", "S005", ""),
    "linfeng": ("林峰", "staff", "S005", ""),
    "heping": ("何平", "staff", "S005", ""),
    "gaoyuan": ("高远", "manager", "S006", ""),
    "luojia": ("罗佳", "staff", "S006", ""),
    "zhengkai": ("郑凯", "staff", "S006", ""),
    "fengtao": ("冯涛", "supervisor", "", "华东区"),
    "dongjie": ("董洁", "supervisor", "", "华南区"),
    "caoyang": ("曹阳", "admin", "", ""),
}

# category -> [(base name, unit, base price, (size variants))]; two variants each → 40 SKUs per category
CATALOGUE: dict[str, list[tuple[str, str, str, tuple[str, str]]]] = {
    "饮料": [
        ("农夫山泉饮用天然水", "瓶", "2.00", ("550ml", "1.5L")), ("可口可乐", "罐", "3.50", ("330ml", "2L")),
        ("百事可乐", "罐", "3.50", ("330ml", "2L")), ("雪碧", "罐", "3.50", ("330ml", "2L")),
        ("怡宝纯净水", "瓶", "2.00", ("555ml", "1.5L")), ("元气森林苏打气泡水", "瓶", "5.50", ("480ml", "6瓶装")),
        ("康师傅冰红茶", "瓶", "3.00", ("500ml", "1L")), ("统一冰红茶", "瓶", "3.00", ("500ml", "1L")),
        ("王老吉凉茶", "罐", "4.00", ("310ml", "6罐装")), ("娃哈哈AD钙奶", "排", "9.90", ("4瓶装", "24瓶装")),
        ("东方树叶茉莉花茶", "瓶", "5.00", ("500ml", "900ml")), ("美汁源果粒橙", "瓶", "4.50", ("420ml", "1.25L")),
        ("红牛维生素功能饮料", "罐", "6.00", ("250ml", "6罐装")), ("脉动青柠味", "瓶", "5.00", ("600ml", "1L")),
        ("三得利乌龙茶", "瓶", "5.50", ("500ml", "1.25L")), ("养乐多", "排", "11.50", ("5瓶装", "10瓶装")),
        ("伊利纯牛奶", "盒", "3.50", ("250ml", "12盒装")), ("蒙牛纯甄酸奶", "盒", "5.50", ("200g", "10盒装")),
        ("雀巢咖啡丝滑拿铁", "瓶", "6.50", ("268ml", "15瓶装")), ("青岛啤酒经典", "罐", "5.00", ("500ml", "12罐装")),
    ],
    "零食": [
        ("乐事薯片原味", "袋", "7.90", ("70g", "135g")), ("乐事薯片黄瓜味", "袋", "7.90", ("70g", "135g")),
        ("奥利奥夹心饼干", "盒", "9.90", ("97g", "388g")), ("旺旺雪饼", "袋", "8.50", ("84g", "520g")),
        ("好丽友派", "盒", "13.90", ("6枚", "12枚")), ("德芙丝滑牛奶巧克力", "块", "10.90", ("43g", "252g")),
        ("士力架花生夹心", "条", "4.50", ("51g", "家庭装")), ("三只松鼠每日坚果", "袋", "6.90", ("25g", "750g")),
        ("良品铺子猪肉脯", "袋", "15.90", ("100g", "200g")), ("卫龙大面筋", "袋", "3.50", ("65g", "106g")),
        ("旺仔QQ糖", "袋", "3.00", ("20g", "70g")), ("徐福记酥心糖", "袋", "12.90", ("200g", "500g")),
        ("盼盼法式小面包", "袋", "12.50", ("200g", "400g")), ("达利园蛋黄派", "盒", "11.90", ("6枚", "12枚")),
        ("康师傅3+2苏打夹心", "袋", "6.50", ("125g", "250g")), ("洽洽香瓜子", "袋", "6.90", ("160g", "308g")),
        ("上好佳鲜虾片", "袋", "5.50", ("40g", "80g")), ("口水娃兰花豆", "袋", "5.90", ("80g", "218g")),
        ("绿箭口香糖", "盒", "8.90", ("40粒", "80粒")), ("米老头米饼", "袋", "7.50", ("150g", "400g")),
    ],
    "日用": [
        ("维达抽纸", "提", "12.90", ("3包", "6包")), ("清风抽纸", "提", "11.90", ("3包", "6包")),
        ("心相印湿巾", "包", "5.90", ("10片", "80片")), ("高露洁牙膏", "支", "9.90", ("90g", "180g")),
        ("佳洁士牙膏", "支", "9.50", ("90g", "180g")), ("舒肤佳香皂", "块", "4.90", ("108g", "3块装")),
        ("海飞丝洗发水", "瓶", "29.90", ("200ml", "400ml")), ("飘柔洗发水", "瓶", "24.90", ("200ml", "400ml")),
        ("蓝月亮洗衣液", "瓶", "19.90", ("1kg", "3kg")), ("立白洗洁精", "瓶", "8.90", ("500g", "1.5kg")),
        ("超能洗衣粉", "袋", "12.90", ("1kg", "2kg")), ("威露士洗手液", "瓶", "15.90", ("300ml", "525ml")),
        ("舒洁厨房纸", "提", "13.50", ("2卷", "4卷")), ("妙洁保鲜袋", "盒", "9.90", ("中号", "大号")),
        ("南孚电池5号", "板", "10.90", ("2粒", "8粒")), ("云南白药牙膏", "支", "25.90", ("105g", "180g")),
        ("护舒宝日用卫生巾", "包", "14.90", ("10片", "20片")), ("吉列剃须刀片", "盒", "39.90", ("2片", "4片")),
        ("得宝手帕纸", "包", "8.90", ("6包", "18包")), ("六神花露水", "瓶", "12.50", ("95ml", "195ml")),
    ],
    "生鲜": [
        ("富士苹果", "份", "9.90", ("500g", "1kg")), ("海南香蕉", "份", "6.90", ("500g", "1kg")),
        ("砂糖橘", "份", "8.90", ("500g", "1kg")), ("阳光玫瑰葡萄", "盒", "29.90", ("300g", "500g")),
        ("丹东草莓", "盒", "25.90", ("250g", "500g")), ("圣女果", "盒", "9.90", ("250g", "500g")),
        ("上海青", "份", "3.50", ("300g", "500g")), ("西兰花", "个", "5.90", ("单个", "2个装")),
        ("土豆", "份", "3.90", ("500g", "1kg")), ("胡萝卜", "份", "3.50", ("500g", "1kg")),
        ("鸡蛋", "盒", "12.90", ("10枚", "30枚")), ("土鸡蛋", "盒", "19.90", ("10枚", "20枚")),
        ("猪里脊肉", "盒", "18.90", ("300g", "500g")), ("鸡胸肉", "盒", "12.90", ("400g", "1kg")),
        ("牛腩块", "盒", "39.90", ("300g", "500g")), ("鲜切三文鱼", "盒", "49.90", ("150g", "300g")),
        ("豆腐", "盒", "3.50", ("350g", "2盒装")), ("香菇", "盒", "6.90", ("200g", "400g")),
        ("黄瓜", "份", "3.90", ("500g", "1kg")), ("番茄", "份", "5.90", ("500g", "1kg")),
    ],
    "速食": [
        ("康师傅红烧牛肉面", "桶", "4.50", ("桶装", "5连包")), ("统一老坛酸菜牛肉面", "桶", "4.50", ("桶装", "5连包")),
        ("今麦郎一菜一面", "桶", "5.50", ("桶装", "5连包")), ("合味道海鲜风味", "杯", "6.50", ("杯装", "4杯装")),
        ("白象汤好喝", "桶", "5.00", ("桶装", "5连包")), ("汤达人日式豚骨拉面", "桶", "7.50", ("桶装", "5连包")),
        ("自嗨锅麻辣牛肉", "盒", "29.90", ("单盒", "3盒装")), ("海底捞自热小火锅", "盒", "35.90", ("单盒", "3盒装")),
        ("三全水饺猪肉白菜", "袋", "15.90", ("500g", "1kg")), ("思念汤圆黑芝麻", "袋", "12.90", ("500g", "1kg")),
        ("湾仔码头玉米水饺", "袋", "24.90", ("360g", "720g")), ("双汇王中王火腿肠", "袋", "8.90", ("5支", "10支")),
        ("梅林午餐肉罐头", "罐", "15.90", ("198g", "340g")), ("五谷磨房燕麦片", "袋", "19.90", ("400g", "1kg")),
        ("桂格即食燕麦片", "袋", "22.90", ("500g", "1kg")), ("李子柒螺蛳粉", "袋", "13.90", ("335g", "3袋装")),
        ("好欢螺螺蛳粉", "袋", "12.90", ("400g", "3袋装")), ("阿宽红油面皮", "袋", "4.90", ("单袋", "5袋装")),
        ("安井鱼丸", "袋", "14.90", ("240g", "500g")), ("正大蒸饺", "袋", "19.90", ("300g", "600g")),
    ],
}


@dataclass(frozen=True)
class DemoSku:
    code: str
    barcode: str
    name: str
    category: str
    unit: str
    price: Decimal


def ean13(body12: str) -> str:
    """Append the EAN-13 check digit to a 12-digit body."""
    if len(body12) != 12 or not body12.isdigit():
        raise ValueError(f"EAN-13 body must be 12 digits, got {body12!r}")
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body12))
    return body12 + str((10 - total % 10) % 10)


def demo_skus() -> list[DemoSku]:
    skus: list[DemoSku] = []
    for category, items in CATALOGUE.items():
        for base, unit, price, variants in items:
            for n, variant in enumerate(variants):
                number = len(skus) + 1
                factor = Decimal(1) if n == 0 else Decimal("2.6")
                skus.append(DemoSku(
                    code=f"A{number:03d}", barcode=ean13(f"690{number:09d}"), name=f"{base} {variant}",
                    category=category, unit=unit, price=(Decimal(price) * factor).quantize(Decimal("0.10")),
                ))
    return skus


def demo_stock(skus: list[DemoSku]) -> list[tuple[str, str, int, int]]:
    """(store, sku, on_hand, safety_stock) for every pair; a few SKUs per store sit just above their safety line.
    S001's A001 is one of them, so `盘点 A001 7` at 上海徐汇店 drops it below the line."""
    rng = random.Random(SEED)
    rows = []
    for store in STORES:
        near = {"A001"} if store == "S001" else set()
        near.update(rng.sample([s.code for s in skus], 4))
        for sku in skus:
            safety = rng.randint(4, 12)
            if store == "S001" and sku.code == "A001":
                safety = 8
            on_hand = safety + rng.randint(1, 2) if sku.code in near else safety + rng.randint(6, 60)
            rows.append((store, sku.code, on_hand, safety))
    return rows


def chat_id(store: str) -> str:
    """A deterministic, WeCom-looking group chat id."""
    rng = random.Random(f"{SEED}-{store}")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "wr" + "".join(rng.choice(alphabet) for _ in range(30))


def demo_users() -> dict[str, str]:
    """userid → name, for registering the demo's people in the sandbox."""
    return {userid: name for userid, (name, *_rest) in STAFF.items()}


def _write(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_sample_chain(folder: Path) -> list[Path]:
    """Write stores.csv, staff.csv, skus.csv and stock.csv into `folder`; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    skus = demo_skus()
    return [
        _write(folder / "stores.csv", ["code", "name", "region", "latitude", "longitude", "chat_id", "timezone"],
               [[code, name, region, lat, lng, chat_id(code), "Asia/Shanghai"]
                for code, (name, region, lat, lng) in STORES.items()]),
        _write(folder / "staff.csv", ["userid", "name", "role", "store", "region"],
               [[userid, *values] for userid, values in STAFF.items()]),
        _write(folder / "skus.csv", ["code", "barcode", "name", "category", "unit", "price"],
               [[s.code, s.barcode, s.name, s.category, s.unit, s.price] for s in skus]),
        _write(folder / "stock.csv", ["store", "sku", "on_hand", "safety_stock"],
               [list(row) for row in demo_stock(skus)]),
    ]


@dataclass(frozen=True)
class WalkStep:
    """One step of a demo walkthrough: who does what, in Chinese and in English."""

    userid: str
    who: str
    zh: str
    en: str


ROLE_NAMES = {"staff": "店员", "manager": "店长", "supervisor": "督导", "admin": "管理员"}
TRANSFER_FROM, TRANSFER_TO, TRANSFER_SKU, TRANSFER_QTY = "S002", "S001", "A001", 5


def _person(role: str, store: str = "", region: str = "") -> str:
    return next(u for u, (_, r, s, g) in STAFF.items() if r == role and s == store and g == region)


def _who(userid: str) -> str:
    name, role, store, region = STAFF[userid]
    where = STORES[store][0] if store else region
    return f"{name}（{userid}，{where}{ROLE_NAMES[role]}）"


def transfer_walkthrough() -> list[WalkStep]:
    """The transfer loop with the seeded people: S001 asks S002 for stock, the region's supervisor approves,
    S002's manager ships, S001 signs."""
    src_name, dst_name = STORES[TRANSFER_FROM][0], STORES[TRANSFER_TO][0]
    requester = next(u for u, (_, r, s, _g) in STAFF.items() if r == "staff" and s == TRANSFER_TO)
    supervisor = _person("supervisor", region=STORES[TRANSFER_TO][1])
    shipper = _person("manager", store=TRANSFER_FROM)
    receiver = _person("manager", store=TRANSFER_TO)
    ask = f"调拨 {TRANSFER_FROM} {TRANSFER_SKU} {TRANSFER_QTY}"
    return [
        WalkStep(requester, _who(requester),
                 f"在手机页面选 {requester}，发送「{ask}」：向{src_name}要 {TRANSFER_QTY} 件 {TRANSFER_SKU}，"
                 "回复里有调拨单号",
                 f'pick {requester} on the phone page and send "{ask}"; the reply names the transfer id'),
        WalkStep(supervisor, _who(supervisor), f"切换到 {supervisor}，在「调拨审批」卡片上点「同意」",
                 f'switch to {supervisor} and tap "同意" (approve) on the approval card'),
        WalkStep(shipper, _who(shipper), f"切换到 {shipper}，在「调拨出库」卡片上点「确认出库」（{src_name}库存减少）",
                 f'switch to {shipper} and tap "确认出库" (shipped) on the ship card'),
        WalkStep(requester, _who(requester), f"切回 {requester}，发送「签收 调拨单号」（或 {receiver} 在{dst_name}的"
                 "到货卡片上点「确认签收」），货物入库",
                 f'back to {requester}: send "签收 <id>" (or {receiver} taps "确认签收"); stock arrives'),
    ]


def sale_defaults() -> tuple[str, str, int]:
    """(store, SKU, qty) of a sale that takes S001's A001 from just above its safety line to below it."""
    on_hand, safety = next((o, s) for st, sku, o, s in demo_stock(demo_skus()) if (st, sku) == ("S001", "A001"))
    return "S001", "A001", on_hand - safety + 1
